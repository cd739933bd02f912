#!/usr/bin/env bash
# Create (or reuse) the isolated virtualenv for the emulator and print its python path.
# The venv lives outside the repo: ${DROVER_EMULATOR_VENV:-$HOME/.cache/drover/emulator-venv}.
# Idempotent: reinstalls only when requirements.txt or the base python changes.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${DROVER_EMULATOR_VENV:-$HOME/.cache/drover/emulator-venv}"
base_python="${DROVER_EMULATOR_PYTHON:-python3}"
req="$here/requirements.txt"
stamp="$venv/.drover-requirements.sha256"

want="$({ cat "$req"; "$base_python" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)"
# Concurrent callers (parallel test processes) wait for one install.
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
    && "$venv/bin/python" -c 'import moto, boto3, pytest' 2>/dev/null; then
    echo "$venv/bin/python"
    exit 0
fi

if ! "$base_python" -c 'import sys; sys.exit(sys.version_info < (3, 9))'; then
    echo "setup.sh: $base_python is older than 3.9" >&2
    exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
    mkdir -p "$(dirname "$venv")"
    "$base_python" -m venv "$venv" >&2
fi
rm -f "$stamp"
"$venv/bin/python" -m pip install --disable-pip-version-check --no-input -q -r "$req" >&2
echo "$want" > "$stamp"
echo "$venv/bin/python"
