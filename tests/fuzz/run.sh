#!/usr/bin/env bash
# Run every fuzz target for a bounded time (seconds, default 60 each), with
# the small seed corpora in tests/fuzz/corpus. Needs a nightly toolchain and
# cargo-fuzz:  rustup toolchain install nightly && cargo install cargo-fuzz
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-60}"
for target in drill_parser component_loader http_proxy; do
  echo "== $target for ${seconds}s"
  work="$(mktemp -d)"
  cp -r "tests/fuzz/corpus/$target/." "$work/"
  cargo +nightly fuzz run --fuzz-dir tests/fuzz "$target" "$work" -- \
    -max_total_time="$seconds" -rss_limit_mb=4096 -print_final_stats=1 2>&1 | tail -12
  rm -rf "$work"
done
