#!/usr/bin/env bash
# Fuzzes every parser at a trust boundary for a fixed time each (default 60 s):
#   scripts/fuzz.sh [SECONDS] [TARGET...]
# Targets (fuzz/fuzz_targets, bodies in tests/src/fuzz.rs): wire, drpc_frame, config, mgmt_api, mgmt_peer, auth, cart.
# Uses libFuzzer through cargo-fuzz on the nightly toolchain (installed if missing). New inputs
# that reach new code are kept in fuzz/corpus/<target>/, which `cargo test` replays on stable;
# a finding is saved in fuzz/artifacts/<target>/ and the script exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
SECONDS_EACH=${1:-60}
shift || true
TARGETS=("$@")
[[ ${#TARGETS[@]} -gt 0 ]] || TARGETS=(wire drpc_frame config mgmt_api mgmt_peer auth cart)
if ! rustup toolchain list | grep -q '^nightly'; then
  rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  cargo +nightly install cargo-fuzz --locked
fi
status=0
for t in "${TARGETS[@]}"; do
  echo "== fuzz $t for ${SECONDS_EACH}s"
  if ! (cd fuzz && cargo +nightly fuzz run "$t" "corpus/$t" -- \
          -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 -timeout=10); then
    echo "fuzz $t: FINDING (see fuzz/artifacts/$t/)" >&2
    status=1
  fi
done
exit $status
