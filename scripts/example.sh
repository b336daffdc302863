#!/usr/bin/env bash
# Builds seqgrad and runs the example trainer; arguments are passed to it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh -DSEQGRAD_BUILD_EXAMPLES=ON
exec ./build/examples/seed_trace "$@"
