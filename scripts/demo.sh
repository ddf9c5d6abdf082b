#!/usr/bin/env bash
# The main job: installs what is needed, builds daos-rs, and runs a single-node system on the
# embedded default config (emulated storage under $DAOS_DATA_DIR, default ./daos-demo), the way
# the DAOS deployment guide does it: daos_server start -> maintenance mode -> dmg storage format
# -> the engine starts and joins -> dmg system query -v -> dmg pool create/query/get-acl ->
# daos_agent start (clients' credentials; pool connect checks the pool's ACL) -> daos container
# create -> object put/get of a file over the fabric, compared byte for byte -> daos_bench io ->
# clean stop.
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
  if ! "${DMG[@]}" storage format; then
    # An earlier demo's bdev file without its SCM (tmpfs gone after a reboot): the demo's
    # own data directory, so reformatting it loses nothing of anyone else's.
    echo "== dmg storage format --force   (the demo's own data dir, left by an earlier run)"
    "${DMG[@]}" storage format --force
  fi
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

echo "== dmg pool get-acl demo"
"${DMG[@]}" pool get-acl demo

AGENT_DIR="$DAOS_DATA_DIR/agent"
mkdir -p "$AGENT_DIR"
printf '%s\n' "name: daos_server" "access_points: ['localhost:$PORT']" "runtime_dir: $AGENT_DIR" \
  "log_file: $AGENT_DIR/daos_agent.log" "transport_config:" "  allow_insecure: true" \
  >"$AGENT_DIR/daos_agent.yml"
echo "== daos_agent -o $AGENT_DIR/daos_agent.yml   (socket: $AGENT_DIR/daos_agent.sock)"
"$BIN/daos_agent" -o "$AGENT_DIR/daos_agent.yml" >"$AGENT_DIR/daos_agent.out" 2>&1 &
AGENT_PID=$!
trap 'kill -TERM $PID $AGENT_PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -S "$AGENT_DIR/daos_agent.sock" ] && break; sleep 0.1; done
if ! [ -S "$AGENT_DIR/daos_agent.sock" ]; then
  cat "$AGENT_DIR/daos_agent.out"; echo "demo: daos_agent did not start" >&2; exit 1
fi
export DAOS_AGENT_DRPC_DIR="$AGENT_DIR"
echo "== daos_agent dump-attachinfo"
"$BIN/daos_agent" -o "$AGENT_DIR/daos_agent.yml" dump-attachinfo

DAOS=("$BIN/daos" -i -l "localhost:$PORT")
echo "== daos container create demo c1"
"${DAOS[@]}" container create demo c1
SAMPLE="$DAOS_DATA_DIR/sample.bin"
head -c 8M /dev/urandom >"$SAMPLE"
echo "== daos object put demo c1 sample $SAMPLE   (8 MiB of random bytes)"
"${DAOS[@]}" object put demo c1 sample "$SAMPLE"
echo "== daos object get demo c1 sample $SAMPLE.back"
"${DAOS[@]}" object get demo c1 sample "$SAMPLE.back"
if cmp -s "$SAMPLE" "$SAMPLE.back"; then
  echo "   read back $(stat -c %s "$SAMPLE.back") bytes: identical to what was written"
else
  echo "demo: the data read back differs from what was written" >&2; exit 1
fi
echo "== daos object list demo c1 / container list demo / container query demo c1"
"${DAOS[@]}" object list demo c1
"${DAOS[@]}" container list demo
"${DAOS[@]}" container query demo c1

echo "== daos_bench io --pool demo --runtime 2 --objects 256   (update then fetch+verify, 4 KiB and 1 MiB values)"
"$BIN/daos_bench" io -i -l "localhost:$PORT" --pool demo --runtime 2 --objects 256 --json "$DAOS_DATA_DIR/io.json"
echo "   (results also in $DAOS_DATA_DIR/io.json)"

echo "== control log"
cat "$LOG"

echo "== daos_agent log"
cat "$AGENT_DIR/daos_agent.log"
echo "== stopping daos_agent and daos_server (SIGTERM)"
kill -TERM $AGENT_PID
wait $AGENT_PID
kill -TERM $PID
wait $PID
trap - EXIT
tail -n 3 "$LOG"
echo "== done. The system's storage stays in $DAOS_DATA_DIR: a restart rejoins without format."
if mountpoint -q "$DAOS_DATA_DIR/scm0" 2>/dev/null; then
  echo "   SCM is a tmpfs mount; remove it with: umount $DAOS_DATA_DIR/scm0"
fi
