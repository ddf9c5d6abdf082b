#!/usr/bin/env bash
# The test command: installs what is needed (scripts/setup.sh), builds the binaries the
# integration tests start, and runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --workspace --bins
cargo test --workspace "$@"
