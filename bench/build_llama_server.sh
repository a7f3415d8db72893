#!/usr/bin/env bash
# Builds llama.cpp's llama-server and llama-quantize from the llama-cpp-python sdist's vendored
# sources (no git, no hub: only PyPI), cached under ~/.cache/copygen/bench so only the first
# `make bench` pays the ~8 minutes. Prints the directory holding the two binaries.
#
# One argument, the build: "native" (GGML_NATIVE=ON: every instruction this CPU has, AMX
# included where present) or "noamx" (GGML_NATIVE=OFF with AVX-512, its BF16 and VNNI parts on
# and AMX off: what llama.cpp does on a CPU without AMX).
set -euo pipefail
BUILD="${1:-native}"
VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
CACHE="${COPYGEN_BENCH_CACHE:-$HOME/.cache/copygen/bench}"
case "$BUILD" in
    native) FLAGS=(-DGGML_NATIVE=ON); OUT="$CACHE/llama.cpp-$VERSION" ;;
    noamx) FLAGS=(-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
                  -DGGML_AVX512=ON -DGGML_AVX512_VBMI=ON -DGGML_AVX512_VNNI=ON
                  -DGGML_AVX512_BF16=ON -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF
                  -DGGML_AMX_BF16=OFF)
           OUT="$CACHE/llama.cpp-$VERSION-noamx" ;;
    *) echo "unknown build: $BUILD (native or noamx)" >&2; exit 2 ;;
esac
if [ -x "$OUT/bin/llama-server" ] && [ -x "$OUT/bin/llama-quantize" ]; then
    echo "$OUT/bin"; exit 0
fi
for pair in cmake:cmake ninja:ninja-build g++:g++; do
    command -v "${pair%%:*}" >/dev/null || apt-get install -y -qq "${pair#*:}" >/dev/null || {
        echo "${pair#*:} is needed: apt-get install -y ${pair#*:}" >&2; exit 1; }
done
WORK="$CACHE/src-$VERSION-$BUILD"
rm -rf "$WORK" && mkdir -p "$WORK"
python3 -m pip download --quiet --no-deps --no-binary :all: \
    "llama-cpp-python==$VERSION" -d "$WORK" >&2
tar -xzf "$WORK"/llama_cpp_python-"$VERSION".tar.gz -C "$WORK"
SRC="$WORK/llama_cpp_python-$VERSION/vendor/llama.cpp"
cmake -S "$SRC" -B "$WORK/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_SERVER=ON "${FLAGS[@]}" >&2
cmake --build "$WORK/build" --target llama-server llama-quantize -j "$(nproc)" >&2
mkdir -p "$OUT/bin"
cp "$WORK/build/bin/llama-server" "$WORK/build/bin/llama-quantize" "$OUT/bin/"
# Shared libraries, when the vendored build makes them.
find "$WORK/build" -name '*.so*' -exec cp -P {} "$OUT/bin/" \; 2>/dev/null || true
rm -rf "$WORK"
echo "$OUT/bin"
