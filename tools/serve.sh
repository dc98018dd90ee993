#!/usr/bin/env bash
# Installs every dependency (Debian packages), builds, and runs `plextv serve` with a data
# directory under ./data. Extra arguments are passed to `plextv serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
exec ./build/plextv serve --data-dir ./data "$@"
