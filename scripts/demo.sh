#!/usr/bin/env bash
# The main job: installs what is needed, builds daos-rs, and runs a single-node system on the
# embedded default config (emulated storage under $DAOS_DATA_DIR, default ./daos-demo), the way
# the DAOS deployment guide does it: daos_server start -> maintenance mode -> dmg storage format
# -> the engine starts and joins -> dmg system query -v -> dmg pool create/query -> clean stop.
#
# Still to come in this flow: containers and I/O.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --workspace --bins
BIN=$PWD/target/release
export DAOS_DATA_DIR="${DAOS_DATA_DIR:-$PWD/daos-demo}"
PORT="${DAOS_DEMO_PORT:-10001}"
DMG=("$BIN/dmg" -i -l "localhost:$PORT")
mkdir -p "$DAOS_DATA_DIR"

echo "== daos_server config validate (embedded default, data dir $DAOS_DATA_DIR)"
"$BIN/daos_server" config validate

LOG="$DAOS_DATA_DIR/daos_server.out"
echo "== daos_server start -p $PORT   (log: $LOG)"
"$BIN/daos_server" start -p "$PORT" >"$LOG" 2>&1 &
PID=$!
trap 'kill -TERM $PID 2>/dev/null || true' EXIT
wait_log() {
  for _ in $(seq 300); do
    grep -q "$1" "$LOG" && return 0
    kill -0 $PID 2>/dev/null || break
    sleep 0.1
  done
  cat "$LOG"; echo "demo: timed out waiting for: $1" >&2; exit 1
}
wait_log "listening on"
grep -E "SCM format required|already|storage ready" "$LOG" || true

echo "== dmg storage scan"
"${DMG[@]}" storage scan
if grep -q "SCM format required" "$LOG"; then
  echo "== dmg storage format"
  "${DMG[@]}" storage format
fi
wait_log "the system as rank"

echo "== dmg system query -v"
"${DMG[@]}" system query -v

echo "== dmg pool create demo --size 2G"
"${DMG[@]}" pool destroy demo >/dev/null 2>&1 || true
"${DMG[@]}" pool create demo --size 2G
echo "== dmg pool list / query"
"${DMG[@]}" pool list
"${DMG[@]}" pool query demo

echo "== control log"
cat "$LOG"

echo "== stopping daos_server (SIGTERM)"
kill -TERM $PID
wait $PID
trap - EXIT
tail -n 3 "$LOG"
echo "== done. The system's storage stays in $DAOS_DATA_DIR: a restart rejoins without format."
if mountpoint -q "$DAOS_DATA_DIR/scm0" 2>/dev/null; then
  echo "   SCM is a tmpfs mount; remove it with: umount $DAOS_DATA_DIR/scm0"
fi
