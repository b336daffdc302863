#!/usr/bin/env bash
# Proves each way of using seqgrad from another project (README, "Installing"). Installs seqgrad
# into a temporary prefix, then builds and runs tests/downstream/ (it trains a small model and fails
# unless the loss falls) with find_package, with pkg-config, with a plain compiler line and from the
# source tree with add_subdirectory; then builds the .deb, checks its Depends resolve, unpacks it into
# a scratch root and builds against that. With --shared, also the shared library: its SONAME, its
# exported symbols (seqgrad's only) and find_package against it. Builds under build-install/ (ccache
# when installed).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
bash scripts/deps.sh

out=build-install
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake_args=(-DCMAKE_BUILD_TYPE=Release)
if command -v ccache >/dev/null; then
  # The add_subdirectory build compiles the library again: same depth below $root as the first
  # build, so ccache's relative paths match and it hits.
  export CCACHE_BASEDIR=$root
  cmake_args+=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
step() { echo "-- $* (at ${SECONDS} s)"; }
run() { (cd "$1" && ./downstream); }

step "build seqgrad (static) and install it into a temporary prefix"
cmake -S . -B $out/pkg/seqgrad "${cmake_args[@]}" -DSEQGRAD_BUILD_TESTS=OFF -DSEQGRAD_BUILD_BENCH=OFF \
  -DSEQGRAD_BUILD_EXAMPLES=OFF >/dev/null
cmake --build $out/pkg/seqgrad -j "$(nproc)"
cmake --install $out/pkg/seqgrad --prefix "$tmp/prefix" >/dev/null

step "find_package(seqgrad 0.2 REQUIRED)"
cmake -S tests/downstream -B $out/find "${cmake_args[@]}" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build $out/find
run $out/find

step "pkg-config --cflags --libs seqgrad"
mkdir -p $out/pc
g++ -std=c++20 -O2 tests/downstream/main.cpp -o $out/pc/downstream \
  $(PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig" pkg-config --cflags --libs seqgrad)
run $out/pc

step "a plain compiler line"
mkdir -p $out/plain
p=$tmp/prefix
libs=(-lseqgrad -lfmt)
grep -q "SEQGRAD_WITH_MPI 1" "$p/include/seqgrad/version.h" && libs+=(-lmpi)  # dist/ is in the library
g++ -std=c++20 -O2 -fopenmp -I"$p/include" -I"$p/include/seqgrad" tests/downstream/main.cpp -o $out/plain/downstream \
  -L"$p/lib" "${libs[@]}"
run $out/plain

step "add_subdirectory(seqgrad)"
cmake -S tests/downstream -B $out/sub/ "${cmake_args[@]}" -DSEQGRAD_SOURCE_DIR="$root" >/dev/null
cmake --build $out/sub -j "$(nproc)"
run $out/sub

step "cpack -G DEB, then the package unpacked into a scratch root"
rm -f $out/pkg/seqgrad/*.deb  # one package: a version bump leaves none behind
(cd $out/pkg/seqgrad && cpack -G DEB >/dev/null)
deb=$(ls $out/pkg/seqgrad/libseqgrad-dev_*.deb)
dpkg-deb --field "$deb" Package Version Depends
apt-get install --simulate "$root/$deb" >/dev/null   # every Depends resolves on this system
dpkg-deb --extract "$deb" "$tmp/root"
cmake -S tests/downstream -B $out/deb "${cmake_args[@]}" -DCMAKE_PREFIX_PATH="$tmp/root/usr" >/dev/null
cmake --build $out/deb
run $out/deb

if [ "${1:-}" = "--shared" ]; then
  step "the shared library (-DBUILD_SHARED_LIBS=ON)"
  cmake -S . -B $out/shared "${cmake_args[@]}" -DBUILD_SHARED_LIBS=ON -DSEQGRAD_BUILD_TESTS=OFF \
    -DSEQGRAD_BUILD_BENCH=OFF -DSEQGRAD_BUILD_EXAMPLES=OFF >/dev/null
  cmake --build $out/shared -j "$(nproc)"
  cmake --install $out/shared --prefix "$tmp/shared" >/dev/null
  lib=$(ls "$tmp"/shared/lib/libseqgrad.so.*.*.*)
  readelf -d "$lib" | grep -q "SONAME.*\[libseqgrad\.so\.0\.2\]" || { echo "wrong SONAME" >&2; exit 1; }
  foreign=$(nm -D --defined-only -C "$lib" | sed 's/^[0-9a-f]* [A-Za-z] //' | grep -v 'seqgrad::' || true)
  [ -z "$foreign" ] || { echo "exported symbols that are not seqgrad's:" >&2; echo "$foreign" | head >&2; exit 1; }
  cmake -S tests/downstream -B $out/find-shared "${cmake_args[@]}" -DCMAKE_PREFIX_PATH="$tmp/shared" >/dev/null
  cmake --build $out/find-shared
  run $out/find-shared
  ldd $out/find-shared/downstream | grep -q "libseqgrad.so.0.2 => $tmp/shared" || { echo "not linked to the shared library" >&2; exit 1; }
fi

step "all routes passed"
