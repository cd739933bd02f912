#!/usr/bin/env bash
# Install (or reuse) the JavaScript tools of the editor tests and print their folder.
# They live outside the clone, like the emulator's venv:
# ${DROVER_EDITOR_TOOLS:-$HOME/.cache/drover/editor-tools}, with node_modules/ from `npm ci`
# on this folder's package.json and package-lock.json (exact versions, integrity-checked).
# Idempotent: reinstalls only when the lock file or the node version changes.
# It also makes sure the emulator's venv (Python `jsonschema`) is there.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tools="${DROVER_EDITOR_TOOLS:-$HOME/.cache/drover/editor-tools}"
stamp="$tools/.drover-lock.sha256"

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "tests/editor/setup.sh: node and npm are needed (Node 20 or later)" >&2
    exit 1
fi
want="$({ cat "$here/package.json" "$here/package-lock.json"; node --version; } | sha256sum | cut -d' ' -f1)"
mkdir -p "$tools"
# Concurrent callers wait for one install.
exec 9>"$tools.lock"
flock 9
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
    && [ -f "$tools/node_modules/ajv/package.json" ] \
    && [ -f "$tools/node_modules/yaml-language-server/package.json" ]; then
    bash "$here/../emulator/setup.sh" >/dev/null
    echo "$tools"
    exit 0
fi
rm -f "$stamp"
cp "$here/package.json" "$here/package-lock.json" "$tools/"
npm ci --prefix "$tools" --ignore-scripts --no-audit --no-fund --loglevel=error >&2
echo "$want" > "$stamp"
bash "$here/../emulator/setup.sh" >/dev/null
echo "$tools"
