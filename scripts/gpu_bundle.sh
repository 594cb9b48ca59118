#!/usr/bin/env bash
# Pack the GPU build of Caffe (.caffe/cuda, made by `install.sh --cuda`) into one archive
# that trains on a GPU machine which has the NVIDIA driver, CUDA 13's cuBLAS and cuRAND
# (and cuDNN 9, for a build with cuDNN: a CUDA toolkit, or the nvidia-* wheels PyTorch
# brings) and Python 3 with numpy, scipy,
# h5py and matplotlib, but none of Caffe's build dependencies: a cloud GPU image, a
# machine without network, a session's lent GPU.
#
#   bash scripts/gpu_bundle.sh [--build DIR] [--no-wheels] [ARCHIVE]   # default .caffe/caffe-gpu.tar.xz
#
# The archive holds bin/caffe, lib/ (libcaffe and every shared library it loads except
# the C library, the C++ runtime, the driver's, CUDA's and cuDNN's), python/caffe/proto
# (caffe_pb2: the project reads prototxt with Caffe's own schema), wheels/ (ase and
# protobuf, which such images lack; --no-wheels leaves them out) and env.sh.  On the GPU
# machine, in a checkout (scripts/gpu_chunk.sh does all of it):
#
#   mkdir -p /tmp/cg && tar -xJf caffe-gpu.tar.xz -C /tmp/cg && . /tmp/cg/env.sh
#   bash run_training.sh --resume-from models/checkpoint --gpu 0 --for 600
#
# env.sh finds cuBLAS/cuRAND, installs the wheels into the bundle, checks that every
# library resolves (else it names the missing ones and returns 1) and gives the checkout
# a .venv/bin/{python,caffe} that run_training.sh uses: python3 with the project, the
# wheels and caffe_pb2 on its path, and a wrapper that runs the bundle's caffe with the
# bundle's libraries (Python keeps its own).  --build DIR packs another build (e.g.
# .caffe/cpu, which is how the tests check the packing on a machine without CUDA).
# BUNDLE_XZ_LEVEL (default 6) trades the archive's size for packing time.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$ROOT/.caffe/cuda
OUT=
WITH_WHEELS=1
while [ $# -gt 0 ]; do
  case "$1" in
    --build) BUILD=$(cd "${2:?--build needs a folder}" && pwd); shift ;;
    --no-wheels) WITH_WHEELS=0 ;;
    -h|--help) sed -n '2,25p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "gpu_bundle: unknown option '$1' (see --help)" >&2; exit 1 ;;
    *) OUT=$1 ;;
  esac
  shift
done
OUT=${OUT:-$ROOT/.caffe/caffe-gpu.tar.xz}
# Pure-Python or abi3 wheels for the GPU machine's Python (3.12 in PyTorch's images):
# the versions of requirements.txt.
WHEELS=(ase==3.29.0 protobuf==4.25.9)

die() { printf 'gpu_bundle: ERROR: %s\n' "$*" >&2; exit 1; }
[ -x "$BUILD/build/tools/caffe" ] || die "no Caffe build in $BUILD: run 'bash scripts/install.sh --cuda' first"
grep -q 'CPU_ONLY:BOOL=OFF' "$BUILD/build/CMakeCache.txt" || echo "gpu_bundle: note: $BUILD is a CPU-only build"

STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE"/{bin,lib,python/caffe/proto,wheels}
cp "$BUILD/build/tools/caffe" "$STAGE/bin/caffe"
touch "$STAGE/python/caffe/__init__.py" "$STAGE/python/caffe/proto/__init__.py"
cp "$BUILD/build/include/caffe/proto/caffe_pb2.py" "$STAGE/python/caffe/proto/"

# Every library the tool loads, by its soname, except those the GPU machine must bring.
skip='^(linux-vdso|ld-linux|libc|libm|libdl|libpthread|librt|libresolv|libstdc\+\+|libgcc_s|libcuda|libnvidia|libcublas|libcublasLt|libcurand|libcudart|libcudnn)\.so'
ldd "$STAGE/bin/caffe" | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' | while read -r name path; do
  [[ "$name" =~ $skip ]] && continue
  cp -L "$path" "$STAGE/lib/$name"
done
ldd "$STAGE/bin/caffe" | grep -q 'not found' && die "the build itself has unresolved libraries: $(ldd "$STAGE/bin/caffe" | grep 'not found' | tr -s ' \n' ' ')"
strip --strip-unneeded "$STAGE/bin/caffe" "$STAGE"/lib/*.so* 2>/dev/null || true

if [ "$WITH_WHEELS" = 1 ]; then
  "$ROOT/.venv/bin/python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux2014_x86_64 -d "$STAGE/wheels" "${WHEELS[@]}" ||
    die "could not download the wheels ${WHEELS[*]}"
fi

cat > "$STAGE/env.sh" <<'ENV'
# Source in a stem-restore checkout on the GPU machine (see scripts/gpu_bundle.sh).
CG=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cg_main() {
  local py=${PYTHON:-python3} dirs="" lib d missing
  command -v "$py" >/dev/null || { echo "env.sh: no $py" >&2; return 1; }
  # cuBLAS / cuRAND / cudart (and cuDNN 9, for a build with it): a CUDA toolkit's lib64, or
  # NVIDIA's wheels in site-packages (PyTorch's images have cuDNN there; its sub-libraries
  # load from beside libcudnn.so.9, and its runtime-compiled kernels want NVRTC, which
  # cuDNN opens only if it is on the path: looked for, not required).
  for lib in libcublas.so.13 libcublasLt.so.13 libcurand.so.10 libcudart.so.13 libcudnn.so.9 libnvrtc.so.13; do
    d=$( { ls -d /usr/local/cuda*/lib64 /usr/local/cuda*/targets/*/lib 2>/dev/null;
           "$py" -c 'import site; print("\n".join(site.getsitepackages()))'; } |
         while read -r p; do [ -d "$p/nvidia" ] && p=$p/nvidia; find "$p/" -maxdepth 4 -name "$lib*" 2>/dev/null || true; done |
         head -n 1 || true)
    [ -n "$d" ] && dirs="$dirs:$(dirname "$d")"
  done
  # The libraries are the caffe tool's alone (a wrapper sets them): Python keeps its own.
  missing=$(LD_LIBRARY_PATH="$CG/lib$dirs" ldd "$CG/bin/caffe" | awk '/not found/ {print $1}' | tr '\n' ' ')
  [ -z "$missing" ] || { echo "env.sh: $CG/bin/caffe: libraries not found: $missing" >&2; return 1; }
  if [ ! -f "$CG/site/.done" ] && ls "$CG"/wheels/*.whl >/dev/null 2>&1; then
    "$py" -m pip install -q --no-index --no-deps --no-compile --target "$CG/site" "$CG"/wheels/*.whl &&
      touch "$CG/site/.done" || { echo "env.sh: could not install $CG/wheels" >&2; return 1; }
  fi
  export PYTHONPATH="$PWD:$CG/site:$CG/python${PYTHONPATH:+:$PYTHONPATH}"  # this shell; the shim carries it too
  if [ -e .venv ] && [ ! -f .venv/.gpu-bundle ]; then
    echo "env.sh: $PWD/.venv exists and is not this bundle's: run from a checkout without one" >&2; return 1
  fi
  mkdir -p .venv/bin && touch .venv/.gpu-bundle
  printf '#!/bin/sh\nPYTHONPATH="%s" exec %s "$@"\n' "$PYTHONPATH" "$(command -v "$py")" > .venv/bin/python
  printf '#!/bin/sh\nLD_LIBRARY_PATH="%s${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec %s "$@"\n' \
    "$CG/lib$dirs" "$CG/bin/caffe" > .venv/bin/caffe
  chmod +x .venv/bin/python .venv/bin/caffe
  echo "env.sh: caffe $CG/bin/caffe, python $(command -v "$py"), CUDA libraries from ${dirs#:}"
}
cg_main
ENV

mkdir -p "$(dirname "$OUT")"
tar -I "xz -T0 -${BUNDLE_XZ_LEVEL:-6}" -cf "$OUT.part" -C "$STAGE" .
mv "$OUT.part" "$OUT"
echo "gpu_bundle: $OUT ($(du -h "$OUT" | cut -f1); $(ls "$STAGE/lib" | wc -l) libraries)"
