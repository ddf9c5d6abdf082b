#!/usr/bin/env bash
# The main job: installs what is needed, builds daos-rs, and runs a single-node system on the
# embedded default config (emulated storage under $DAOS_DATA_DIR, default ./daos-demo).
#
# Today the system goes as far as the control server can: validate the embedded default,
# start daos_server (dRPC, active config), show what it wrote, stop it cleanly. Format, engines
# and I/O join as those parts land.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --workspace --bins
BIN=target/release
export DAOS_DATA_DIR="${DAOS_DATA_DIR:-$PWD/daos-demo}"
mkdir -p "$DAOS_DATA_DIR"

echo "== daos_server config validate (embedded default, data dir $DAOS_DATA_DIR)"
"$BIN/daos_server" config validate

echo "== daos_server start"
LOG="$DAOS_DATA_DIR/daos_server.out"
"$BIN/daos_server" start >"$LOG" 2>&1 &
PID=$!
trap 'kill -TERM $PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  [[ -S "$DAOS_DATA_DIR/run/daos_server.sock" ]] && break
  kill -0 $PID 2>/dev/null || { cat "$LOG"; echo "daos_server exited early" >&2; exit 1; }
  sleep 0.1
done
cat "$LOG"
echo "== $DAOS_DATA_DIR/run"
ls -la "$DAOS_DATA_DIR/run"

echo "== stopping daos_server"
kill -TERM $PID
wait $PID
trap - EXIT
tail -n 1 "$LOG"
echo "== done"
