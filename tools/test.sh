#!/usr/bin/env bash
# Installs every dependency (Debian packages), builds from scratch with warnings as errors, and
# runs the whole test suite (unit + integration) with ctest. This is the README's test command
# and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
build=${PTV_BUILD_DIR:-build}
rm -rf "$build"
cmake -S . -B "$build" -DPTV_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build "$build" -j"$(nproc)"
cd "$build"
ctest --output-on-failure --timeout 900 "$@"
