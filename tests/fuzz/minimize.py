#!/usr/bin/env python3
"""Keeps a fuzz target's committed corpus small: its named seeds, plus at most BUDGET of the
inputs the fuzzer found, chosen greedily for the coverage they add.

    python3 tests/fuzz/minimize.py TARGET [BUDGET] [DIR...]

DIRs default to ~/.cache/drover/fuzz/corpus/TARGET (where `run.sh` keeps what it finds).
Files in tests/fuzz/corpus/TARGET named like libFuzzer's (40 hex digits) are candidates like
the DIRs' files and may be dropped; every other file there (a seed) is kept.

libFuzzer (`-set_cover_merge=1 -use_counters=0`, which records every input's features: its
edges, without hit counts) measures each input; then, while the budget lasts, the input adding
the most features not yet covered joins the corpus (the smaller one on a tie). Build the
targets first (`bash tests/fuzz/run.sh 0`).
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HASH = re.compile(r"^[0-9a-f]{40}$")
# Larger inputs slow every run down; the seeds cover the large cases.
MAX_BYTES = 16 * 1024


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    target = argv[1]
    budget = int(argv[2]) if len(argv) > 2 else 100
    home = os.path.expanduser("~")
    dirs = argv[3:] or [os.path.join(home, ".cache/drover/fuzz/corpus", target)]
    corpus = os.path.join(ROOT, "tests/fuzz/corpus", target)
    triple = subprocess.run(
        ["rustc", "-vV"], capture_output=True, text=True, check=True
    ).stdout.split("host: ")[1].split()[0]
    target_dir = os.environ.get(
        "DROVER_FUZZ_TARGET_DIR", os.path.join(home, ".cache/drover/fuzz-target")
    )
    binary = os.path.join(target_dir, triple, "release", target)

    with tempfile.TemporaryDirectory() as tmp:
        control = os.path.join(tmp, "control")
        out = os.path.join(tmp, "out")
        os.mkdir(out)
        subprocess.run(
            [binary, "-set_cover_merge=1", "-use_counters=0", "-timeout=10",
             "-rss_limit_mb=1024", f"-merge_control_file={control}", out, corpus, *dirs],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        lines = open(control).read().split("\n")

    n = int(lines[0])
    files = lines[2 : 2 + n]
    features, size = {}, {}
    for line in lines[2 + n :]:
        parts = line.split()
        if parts and parts[0] == "STARTED":
            size[int(parts[1])] = int(parts[2])
        elif parts and parts[0] == "FT":
            features[int(parts[1])] = set(map(int, parts[2:]))

    def kept(path):
        return os.path.dirname(path) == corpus and not HASH.match(os.path.basename(path))

    seeds = [i for i, f in enumerate(files) if kept(f)]
    have = set().union(*(features.get(i, set()) for i in seeds))
    everything = set().union(*features.values())
    candidates = {i for i in features if i not in seeds and size.get(i, 0) <= MAX_BYTES}
    chosen = []
    while len(chosen) < budget and candidates:
        best = max(candidates, key=lambda i: (len(features[i] - have), -size[i], files[i]))
        if not features[best] - have:
            break
        have |= features[best]
        chosen.append(best)
        candidates.discard(best)

    picked = {files[i] for i in chosen}
    for name in os.listdir(corpus):
        path = os.path.join(corpus, name)
        if HASH.match(name) and path not in picked:
            os.remove(path)
    for path in picked:
        dest = os.path.join(corpus, os.path.basename(path))
        if os.path.abspath(path) != os.path.abspath(dest):
            shutil.copyfile(path, dest)
    total = sum(os.path.getsize(os.path.join(corpus, f)) for f in os.listdir(corpus))
    print(
        f"{target}: {len(seeds)} named + {len(chosen)} found = {len(os.listdir(corpus))} files, "
        f"{total} bytes; features {len(have)} of {len(everything)}"
    )


if __name__ == "__main__":
    main(sys.argv)
