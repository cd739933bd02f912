#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (`.ci/run` calls this script).
#
# On a fresh machine it needs only the Rust toolchain, python3 and Node 20 with npm; everything
# else (the AWS emulator's virtualenv, the editor tests' npm packages) is installed by the
# scripts it calls. Build outputs go
# outside the clone so that reruns are fast.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/drover/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# Snapshot tests compare, never write, here.
export INSTA_UPDATE=no

step() { printf '\n==> %s\n' "$*"; }

# The HTML report test renders in a real headless browser: Debian's chromium.
if ! [ -x /usr/bin/chromium ]; then
  step "installing Debian's chromium (for the HTML report test)"
  sudo_="" ; [ "$(id -u)" -eq 0 ] || sudo_="sudo"
  $sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq chromium >/dev/null
fi

step "formatting (cargo fmt --check)"
cargo fmt --all -- --check

step "lints (cargo clippy -D warnings)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "API docs (cargo doc, warnings denied)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet

step "supply chain (cargo deny: advisories, licences, bans, sources)"
DENY_VERSION=0.20.2
if [ "$(cargo deny --version 2>/dev/null)" != "cargo-deny $DENY_VERSION" ]; then
  cargo install cargo-deny --locked --version "$DENY_VERSION" --quiet
fi
# The RustSec database lives on GitHub: with it (fresh or cached), every check runs; without
# it (an offline machine, never fetched), licences, bans and sources are still enforced.
if timeout 120 cargo deny fetch db >/dev/null 2>&1 || ls -d "${CARGO_HOME:-$HOME/.cargo}"/advisory-dbs/advisory-db-* >/dev/null 2>&1; then
  cargo deny --locked --offline check
else
  echo "warning: the RustSec advisory database is unreachable and not cached; advisories not checked"
  cargo deny --locked check licenses bans sources
fi

step "example plans (drover validate plans/*.yaml)"
cargo build --locked --quiet
"$CARGO_TARGET_DIR/debug/drover" validate --deny-warnings plans/*.yaml

if [ -f tests/emulator/run-tests.sh ]; then
  step "AWS emulator harness (pytest)"
  bash tests/emulator/run-tests.sh
fi

# The editor tests (tests/editor.rs) drive ajv, yaml-language-server (npm, pinned by
# tests/editor/package-lock.json, in ~/.cache/drover/editor-tools) and Python's jsonschema (in
# the emulator's venv); a second run only checks they are there.
step "editor tools (tests/editor/setup.sh)"
bash tests/editor/setup.sh >/dev/null

step "fuzzing (bounded)"
bash tests/fuzz/run.sh

step "Rust tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo test --workspace --doc --locked --quiet
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi
