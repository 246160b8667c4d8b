#!/usr/bin/env bash
# Run fuzz targets for a bounded time each, from the small seed corpora in
# tests/fuzz/corpus (copied to a scratch dir: what a campaign adds is not
# kept), with tests/fuzz/dict/<target>.dict when there is one.
#
#   tests/fuzz/run.sh [SECONDS] [TARGET...]    (default: 60 s, every target)
#
# Every target runs even when one crashes; crashing inputs are left in
# tests/fuzz/artifacts/<target>/ and the exit status is 1. A hang of more
# than 60 s on one input counts as a crash. Needs a nightly toolchain and
# cargo-fuzz:  rustup toolchain install nightly && cargo install cargo-fuzz --locked
set -uo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(drill_parser component_loader http_proxy tcp_proxy toxiproxy_api)
fi
failed=()
for target in "${targets[@]}"; do
  echo "== $target for ${seconds}s"
  work="$(mktemp -d)"
  cp -r "tests/fuzz/corpus/$target/." "$work/"
  dict=()
  [ -f "tests/fuzz/dict/$target.dict" ] && dict=("-dict=tests/fuzz/dict/$target.dict")
  cargo +nightly fuzz run --fuzz-dir tests/fuzz "$target" "$work" -- \
    -max_total_time="$seconds" -timeout=60 -rss_limit_mb=4096 -print_final_stats=1 "${dict[@]}" \
    2>&1 | tail -14
  status=${PIPESTATUS[0]}
  [ "$status" -eq 0 ] || failed+=("$target")
  rm -rf "$work"
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "crashed or failed: ${failed[*]} (inputs in tests/fuzz/artifacts/)"
  exit 1
fi
