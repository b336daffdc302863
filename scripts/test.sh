#!/usr/bin/env bash
# Builds seqgrad and runs the whole test suite with CTest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh -DSEQGRAD_BUILD_TESTS=ON -DSEQGRAD_BUILD_BENCH=ON -DSEQGRAD_BUILD_EXAMPLES=ON
ctest --test-dir build --output-on-failure -j "$(nproc)"
