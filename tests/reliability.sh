#!/usr/bin/env bash
# Full-size reliability runs for docs/RELIABILITY.md (CI runs reduced ones
# through `cargo test`):
#   - N stops of the engine (SIGKILL during `run`, SIGKILL during `replay`,
#     SIGHUP during `run`, in turn) at pseudo-random points of runs that
#     pause a process, spawn a service with two workers and hold a proxy,
#     on the release binary; faults left behind after recovery are counted
#     (must be 0);
#   - halt-to-reverted time: `firedrill halt` until the paused process runs.
# Usage: tests/reliability.sh [KILLS]   (default 200)
set -euo pipefail
cd "$(dirname "$0")/.."
kills="${1:-200}"
out="$(mktemp)"
cargo build -q --release -p firedrill-cli
cargo build -q -p firedrill-cli --tests
FIREDRILL_TEST_BIN="$PWD/target/release/firedrill" \
FIREDRILL_KILLS="$kills" FIREDRILL_RELIABILITY_OUT="$out" \
  cargo test -q -p firedrill-cli --test all -- recovery::random_sigkills_leave_no_fault_behind --exact >/dev/null
echo "crash loop: $(cat "$out")"

# Halt to reverted, measured from outside: five times.
work="$(mktemp -d)"
trap 'kill "$victim" 2>/dev/null || true; rm -rf "$work"' EXIT
sleep 600 & victim=$!
echo "$victim" > "$work/victim.pid"
cp tests/guests/target/wasm32-wasip2/release/pauser.wasm "$work/" 2>/dev/null ||
  cp target/guests/wasm32-wasip2/release/pauser.wasm "$work/"
cat > "$work/drill.toml" <<TOML
[scenario]
path = "pauser.wasm"
[targets.victim]
kind = "process"
pid_file = "$work/victim.pid"
grants = ["pause"]
TOML
state() { awk '{print $3}' "/proc/$victim/stat"; }
for i in 1 2 3 4 5; do
  FIREDRILL_DATA_DIR="$work/data" target/debug/firedrill run "$work/drill.toml" >/dev/null 2>&1 &
  run=$!
  until [ "$(state)" = T ]; do sleep 0.01; done
  start=$(date +%s%N)
  FIREDRILL_DATA_DIR="$work/data" target/debug/firedrill halt >/dev/null
  until [ "$(state)" != T ]; do sleep 0.001; done
  end=$(date +%s%N)
  wait "$run" || true
  # The halt is kept in the data dir until resumed.
  FIREDRILL_DATA_DIR="$work/data" target/debug/firedrill resume >/dev/null
  echo "halt to reverted: $(( (end - start) / 1000000 )) ms (includes starting the halt command)"
done
