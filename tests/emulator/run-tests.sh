#!/usr/bin/env bash
# Set up the emulator venv (idempotent) and run the emulator's pytest suite.
# Extra arguments go to pytest, e.g. ./run-tests.sh -k copy -x
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="$("$here/setup.sh")"
cd "$here"
export PYTHONDONTWRITEBYTECODE=1
# bounded: every test uses sub-second job durations; the whole run is capped anyway
exec timeout 600 "$python" -m pytest -p no:cacheprovider -q "$@"
