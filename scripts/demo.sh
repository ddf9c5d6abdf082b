#!/usr/bin/env bash
# The main job: installs what is needed, builds daos-rs, and runs a single-node system on the
# embedded default config (emulated storage under $DAOS_DATA_DIR, default ./daos-demo):
# daos_server formats (tmpfs SCM as root, a directory otherwise; a sparse file bdev), starts
# daos_engine, the engine joins as rank 0, then everything stops cleanly.
#
# Still to come in this flow: dmg over the management API, pools, containers and I/O.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --workspace --bins
BIN=$PWD/target/release
export DAOS_DATA_DIR="${DAOS_DATA_DIR:-$PWD/daos-demo}"
mkdir -p "$DAOS_DATA_DIR"

echo "== daos_server config validate (embedded default, data dir $DAOS_DATA_DIR)"
"$BIN/daos_server" config validate

echo "== daos_server start --auto-format"
LOG="$DAOS_DATA_DIR/daos_server.out"
"$BIN/daos_server" start --auto-format >"$LOG" 2>&1 &
PID=$!
trap 'kill -TERM $PID 2>/dev/null || true' EXIT
joined=
for _ in $(seq 300); do
  if grep -q "the system as rank" "$LOG"; then joined=1; break; fi
  kill -0 $PID 2>/dev/null || break
  sleep 0.1
done
cat "$LOG"
[[ -n $joined ]] || { echo "demo: the engine did not join (see the log above)" >&2; exit 1; }

echo "== superblock ($DAOS_DATA_DIR/scm0/superblock)"
cat "$DAOS_DATA_DIR/scm0/superblock"

echo "== stopping daos_server"
kill -TERM $PID
wait $PID
trap - EXIT
tail -n 4 "$LOG"
echo "== done. The system's storage stays in $DAOS_DATA_DIR (a restart rejoins without format)."
if mountpoint -q "$DAOS_DATA_DIR/scm0" 2>/dev/null; then
  echo "   SCM is a tmpfs mount; remove it with: umount $DAOS_DATA_DIR/scm0"
fi
