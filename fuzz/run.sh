#!/usr/bin/env bash
# CI step: builds the libFuzzer targets (fuzz_safetensors, fuzz_csv, fuzz_checkpoint) with clang + ASan + UBSan in
# build-fuzz/ and runs each one for a bounded time, starting from the seed corpora in fuzz/corpus/.
#
#   bash fuzz/run.sh            # 60 s per target
#   bash fuzz/run.sh 10         # 10 s per target (or FUZZ_SECONDS=10)
#
# Installs what is missing first (as root or through sudo): the usual build dependencies
# (scripts/deps.sh) plus clang, libclang-rt-14-dev (libFuzzer and the sanitizer runtimes, which
# Debian 12's clang only recommends) and libomp-14-dev (OpenMP for clang).
#
# Exit status 0: every target ran its full time with no crash, sanitizer report, leak, timeout or
# out-of-memory. Otherwise non-zero, with the failing input saved as
# build-fuzz/artifacts/<target>/crash-* (or leak-*, timeout-*, oom-*); replay it with
#   build-fuzz/fuzz/<target> build-fuzz/artifacts/<target>/crash-...
# New inputs found along the way go to build-fuzz/corpus/<target>/, never into the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-${FUZZ_SECONDS:-60}}"

# clang-14 only recommends libclang-rt-14-dev, which holds libFuzzer and the sanitizer runtimes.
bash scripts/deps.sh clang libclang-rt-14-dev libomp-14-dev

CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSEQGRAD_BUILD_FUZZ=ON \
  -DSEQGRAD_BUILD_TESTS=OFF -DSEQGRAD_BUILD_BENCH=OFF -DSEQGRAD_BUILD_EXAMPLES=OFF >/dev/null
cmake --build build-fuzz -j 2 --target fuzz_safetensors fuzz_csv fuzz_checkpoint

# The kernels' OpenMP threads are idle here; one thread keeps the runs deterministic and lean.
export OMP_NUM_THREADS=1
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
status=0
for name in safetensors csv checkpoint; do
  target="fuzz_${name}"
  mkdir -p "build-fuzz/corpus/${target}" "build-fuzz/artifacts/${target}"
  echo "fuzz: ${target} for ${seconds} s"
  if ! "build-fuzz/fuzz/${target}" -max_total_time="${seconds}" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
      -dict="fuzz/${name}.dict" -artifact_prefix="build-fuzz/artifacts/${target}/" -print_final_stats=1 \
      "build-fuzz/corpus/${target}" "fuzz/corpus/${name}" 2>"build-fuzz/${target}.log"; then
    echo "fuzz: ${target} FAILED; last lines of build-fuzz/${target}.log:" >&2
    tail -n 40 "build-fuzz/${target}.log" >&2
    status=1
  else
    grep -E "^stat::number_of_executed_units|^Done" "build-fuzz/${target}.log" || true
  fi
done
exit "$status"
