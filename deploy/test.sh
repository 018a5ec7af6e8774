#!/usr/bin/env bash
# The whole test suite: host dependencies, formatting, lints, every crate's tests.
# This is the README's test command and exactly what CI (.ci/run) runs.
set -euo pipefail
cd "$(dirname "$0")/.."

deploy/setup-host.sh
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test (release: the property tests and benchmarks run on optimised code)"
cargo test --workspace --release --locked
