#!/usr/bin/env bash
# Fuzzes the plan parser and the journal reader (cargo-fuzz + libFuzzer, stable Rust):
# installs cargo-fuzz if missing, builds, replays the whole committed corpus, then fuzzes
# each target for SECONDS (default 45: the bounded run `tests/run.sh` makes in CI).
#
#   bash tests/fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]     # targets: plan journal journal_replay
#   DROVER_FUZZ_ARGS="-fork=8" bash tests/fuzz/run.sh 3600 plan  # longer, on demand; extra libFuzzer flags
#
# Exits non-zero on any crash (panic, failed invariant), hang (-timeout), or memory blow-up
# (-rss_limit_mb, and each input's heap bound in src/lib.rs), and prints the failing input's
# path (tests/fuzz/artifacts/TARGET/) with the command that reproduces it. See README.md.
set -euo pipefail
cd "$(dirname "$0")/../.."

seconds="${1:-45}"
if [ "$#" -gt 0 ]; then shift; fi
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=(plan journal journal_replay)
case "$seconds" in '' | *[!0-9]*)
  echo "usage: $0 [SECONDS_PER_TARGET] [plan|journal|journal_replay...]" >&2
  exit 2
  ;;
esac

# Longest input libFuzzer makes, and the dictionary, per target.
declare -A max_len=([plan]=65536 [journal]=131072 [journal_replay]=131072)
declare -A dict=([plan]=plan [journal]=journal [journal_replay]=journal)
for t in "${targets[@]}"; do
  [ -n "${max_len[$t]:-}" ] || { echo "no fuzz target \`$t\`" >&2; exit 2; }
done

# Pinned so that CI builds the same tool every time; any installed cargo-fuzz is used as is.
cargo_fuzz_version=0.13.2
fuzz_dir=tests/fuzz
# Build outputs outside the clone (its own directory: the fuzz build's RUSTFLAGS differ).
target_dir="${DROVER_FUZZ_TARGET_DIR:-$HOME/.cache/drover/fuzz-target}"
# Inputs found while fuzzing go here, never into the committed corpus (README: merging them).
work_dir="${DROVER_FUZZ_WORK_DIR:-$HOME/.cache/drover/fuzz}"
limits=(-timeout=10 -rss_limit_mb=1024)
unset CARGO_TARGET_DIR

say() { printf -- '--> %s\n' "$*"; }

export PATH="$HOME/.cargo/bin:$PATH"
if ! cargo fuzz --version >/dev/null 2>&1; then
  say "installing cargo-fuzz $cargo_fuzz_version"
  cargo install cargo-fuzz --locked --version "$cargo_fuzz_version" --quiet
fi
# libfuzzer-sys compiles libFuzzer, which is C++.
if ! command -v c++ >/dev/null 2>&1; then
  say "installing Debian's g++ (libFuzzer is C++)"
  sudo_="" ; [ "$(id -u)" -eq 0 ] || sudo_="sudo"
  $sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq g++ >/dev/null
fi

if ! cargo fetch --locked --quiet --manifest-path "$fuzz_dir/Cargo.toml"; then
  echo "tests/fuzz/Cargo.lock is out of date (a dependency of drover-plan or drover-engine" \
    "changed?): run \`cargo update --manifest-path tests/fuzz/Cargo.toml --workspace\`" >&2
  exit 1
fi
say "building the fuzz targets (stable, no sanitizer)"
cargo fuzz build --fuzz-dir "$fuzz_dir" --sanitizer none --target-dir "$target_dir"
bin_dir="$target_dir/$(rustc -vV | sed -n 's/^host: //p')/release"

failed=0
# This run's logs (runs may overlap: each has its own); removed when everything passed.
mkdir -p "$work_dir"
log_dir="$(mktemp -d "$work_dir/logs.XXXXXX")"
# Runs one libFuzzer process; on failure prints the log's end and the new artifacts.
fuzz() {
  local t="$1" what="$2"
  shift 2
  local artifacts="$fuzz_dir/artifacts/$t" log="$log_dir/$t-$what.log"
  mkdir -p "$artifacts"
  local stamp="$log_dir/$t-$what.stamp"
  touch "$stamp"
  local start=$SECONDS status=0
  "$bin_dir/$t" -artifact_prefix="$artifacts/" "${limits[@]}" "$@" >"$log" 2>&1 || status=$?
  local stats
  stats="$(grep -aE '^#[0-9]+[[:space:]]+(INITED|DONE)' "$log" | tail -n 1 | tr -s '\t ' ' ')"
  printf '    %-15s %-7s %3ss  %s\n' "$t" "$what" "$((SECONDS - start))" "${stats:-(no stats)}"
  if [ "$status" -ne 0 ]; then
    failed=1
    echo "    FAILED (exit $status); the end of $log:" >&2
    tail -n 40 "$log" | sed 's/^/      /' >&2
    find "$artifacts" -type f -newer "$stamp" | while read -r a; do
      echo "    failing input: $a" >&2
      echo "    reproduce:     cargo fuzz run --fuzz-dir $fuzz_dir -s none --target-dir $target_dir $t $a" >&2
    done
  fi
  rm -f "$stamp"
}

say "replaying the corpus and the regressions ($fuzz_dir/{corpus,regressions}/*)"
for t in "${targets[@]}"; do
  regressions=()
  [ -d "$fuzz_dir/regressions/$t" ] && regressions=("$fuzz_dir/regressions/$t")
  fuzz "$t" replay -runs=0 "$fuzz_dir/corpus/$t" "${regressions[@]}"
done
if [ "$seconds" -gt 0 ] && [ "$failed" -eq 0 ]; then
  say "fuzzing each target for ${seconds}s"
  for t in "${targets[@]}"; do
    mkdir -p "$work_dir/corpus/$t"
    # shellcheck disable=SC2086 # DROVER_FUZZ_ARGS is a list of flags.
    fuzz "$t" fuzz -max_total_time="$seconds" -max_len="${max_len[$t]}" \
      -dict="$fuzz_dir/dict/${dict[$t]}.dict" -print_final_stats=1 ${DROVER_FUZZ_ARGS:-} \
      "$work_dir/corpus/$t" "$fuzz_dir/corpus/$t"
  done
fi
if [ "$failed" -eq 0 ]; then
  rm -rf "$log_dir"
else
  echo "logs: $log_dir" >&2
fi
exit "$failed"
