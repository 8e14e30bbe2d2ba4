#!/usr/bin/env bash
# Installs what is missing, builds muri and starts a local network on
# loopback with `muri devnet` (Ctrl-C stops it). Arguments go to muri devnet.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/setup.sh" "$root/build"
export OMP_WAIT_POLICY=passive
exec "$root/build/tools/muri" devnet "$@"
