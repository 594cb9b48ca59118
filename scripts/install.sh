#!/usr/bin/env bash
# Set up stem-restore on a Debian 12 or Ubuntu 24.04 machine (on Ubuntu, and wherever apt has no
# Debian mirror, with CAFFE_SRC set: see the Dockerfile): system packages, the project
# venv (.venv) and BVLC Caffe 1.0 built from pinned, checksummed source, with
# pycaffe importable from the venv and the `caffe` tool at .venv/bin/caffe.
# The CPU build carries a oneDNN convolution engine (scripts/patches/0004-*),
# linked against oneDNN from pinned, checksummed wheels (.caffe/dnnl).
#
#   bash scripts/install.sh            # CPU Caffe (OpenBLAS)
#   bash scripts/install.sh --cuda     # GPU Caffe (cuDNN + cuBLAS); needs nvcc
#
# Options:  --jobs N        parallel compile jobs (default: nproc)
#           --no-cpp-tests  skip building/running Caffe's C++ test suite after a build
#           --fetch-source  only download and verify the pinned source tarball (to
#                           .caffe/downloads/), e.g. in the Dockerfile's Debian stage
# Environment:
#   CAFFE_SRC=PATH   use this Caffe tarball or checkout instead of Debian's source package
#   CUDA_ARCH="75 80 86 89 90"   GPU architectures for --cuda (default: from nvcc's version)
#   CUDNN=0          --cuda without cuDNN (Caffe's own im2col + cuBLAS convolutions only; the
#                    build replaces .caffe/cuda, so bundle one before building the other)
#   PYTHON=python3   interpreter the venv is made from (must be Python 3.11)
#
# Idempotent: every step records what it did in a stamp (a hash of its recipe);
# with the build present and the recipe unchanged, a rerun takes seconds.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE="$ROOT/.caffe"
VENV="$ROOT/.venv"
PATCHES="$ROOT/scripts/patches"
PYTHON=${PYTHON:-python3}
PIP_VERSION=26.3  # the venv's pip (requirements.txt and constraints.txt pin everything it installs)
JOBS=$(nproc)
VARIANT=cpu
CPP_TESTS=all
FETCH_ONLY=0
# Bump when the build steps below change in a way that needs a rebuild (the
# source, patches, CMake flags and numpy version are hashed in already).
RECIPE_VERSION=2

# The pinned source: Debian's caffe source package (bullseye), whose .orig
# tarball is the upstream BVLC tree at commit 99bd997 (files at the top level).
DEB_SUITE=bullseye
DEB_VERSION=1.0.0+git20180821.99bd997-8
ORIG_TARBALL=caffe_1.0.0+git20180821.99bd997.orig.tar.gz
ORIG_SHA256=e0eb3f06794f7402c77b7dec8e8480273ee1a1bb192e9122b621a69d4147ad0c

# oneDNN for the CPU build's convolution engine: Intel's CPU-only wheels built
# with GNU OpenMP (no other runtime needed; the newer `onednn` wheel needs a
# SYCL runtime and TBB). Debian 12's libdnnl-dev is 2.6, whose API differs and
# whose AMX kernels predate the 3.x brgemm convolutions measured in issue 12.
DNNL_WHEELS=(
  "onednn-cpu-gomp==2023.2.0 onednn_cpu_gomp-2023.2.0-py2.py3-none-manylinux1_x86_64.whl 2f22a54d6a890ed14bfa185d42a4be65d8b5b1df85dc1f0f3a9abe31620416fb"
  "onednn-devel-cpu-gomp==2023.2.0 onednn_devel_cpu_gomp-2023.2.0-py2.py3-none-manylinux1_x86_64.whl 9763c69e8c907e119056bd52ad918ca84ac9ba939d130a99dfa95ccca3e5e284"
)

# After each build, Caffe's own C++ test suite runs once (1088 tests, ~25 s on
# 2 cores; building it takes ~4 min). A CPU-only build skips the *GPU* tests,
# as Caffe's own `make runtest` does.

APT_PACKAGES=(
  build-essential cmake pkg-config ca-certificates
  libboost-system-dev libboost-filesystem-dev libboost-thread-dev libboost-python-dev
  libprotobuf-dev protobuf-compiler libgoogle-glog-dev libgflags-dev
  libhdf5-dev liblmdb-dev libleveldb-dev libsnappy-dev libopenblas-dev
)

usage() { awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "$0"; }
say() { printf '\033[1m[install]\033[0m %s\n' "$*"; }
die() { printf '[install] ERROR: %s\n' "$*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --cuda) VARIANT=cuda ;;
    --jobs) JOBS=${2:?--jobs needs a number}; shift ;;
    --no-cpp-tests) CPP_TESTS=none ;;
    --fetch-source) FETCH_ONLY=1 ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
  shift
done

[ -z "${JOBS:-}" ] || [[ "$JOBS" =~ ^[1-9][0-9]*$ ]] || die "--jobs $JOBS: expected a positive whole number"

sha256_of() { cat "$@" | sha256sum | cut -c1-64; }
stamp_ok() { [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }

# --- 1. Prerequisites ---------------------------------------------------------
check_prerequisites() {
  command -v apt-get >/dev/null 2>&1 ||
    die "apt-get not found: this installer supports Debian and Ubuntu only."
  if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo)
  else
    SUDO=(missing-root)
  fi
  command -v "$PYTHON" >/dev/null 2>&1 || die "Python interpreter '$PYTHON' not found."
  PY_VERSION=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  case "$PY_VERSION" in
    3.11|3.12) ;;
    *) die "'$PYTHON' is Python $PY_VERSION; Python 3.11 (Debian 12) or 3.12 (Ubuntu 24.04) is required. Set PYTHON=/path/to/python3.11." ;;
  esac
  # The system's Python (/usr/bin) gets its venv module and C headers from apt with the other
  # packages (a fresh cloud image has neither); another interpreter must bring its own.
  local system_python=0
  case "$(readlink -f "$(command -v "$PYTHON")")" in /usr/bin/*) system_python=1 ;; esac
  if ! "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null; then
    [ "$system_python" = 1 ] ||
      die "'$PYTHON' lacks the venv/ensurepip modules (Debian: apt-get install python$PY_VERSION-venv)."
    APT_PACKAGES+=("python$PY_VERSION-venv")
  fi
  if ! "$PYTHON" -c 'import os, sysconfig, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'; then
    [ "$system_python" = 1 ] ||
      die "'$PYTHON' has no C headers (Python.h), needed for pycaffe (Debian: apt-get install python$PY_VERSION-dev)."
    APT_PACKAGES+=("python$PY_VERSION-dev")
  fi
  if [ "$VARIANT" = cuda ]; then
    command -v nvcc >/dev/null 2>&1 || die "--cuda needs nvcc (CUDA toolkit) on PATH."
  fi
}

# --- 2. System packages ------------------------------------------------------
install_apt_packages() {
  local missing=() p
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then say "system packages: present"; return; fi
  [ "${SUDO[0]:-}" = missing-root ] &&
    die "missing system packages (${missing[*]}) and no root: run as root or with password-less sudo."
  say "system packages: installing ${missing[*]}"
  "${SUDO[@]}" apt-get update -qq ||
    die "apt-get update failed: no network to the Debian package registry?"
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" ||
    die "apt-get install failed for: ${missing[*]}"
}

# pycaffe links the system's Boost.Python, which exists for one Python version.
check_boost_python() {
  local want=${PY_VERSION/./} have
  have=$({ ls /usr/lib/*/libboost_python3*.so /usr/lib/libboost_python3*.so 2>/dev/null || true; } |
         sed -n 's/.*libboost_python\(3[0-9]*\)\.so$/\1/p' | sort -u | tr '\n' ' ')
  case " $have " in
    *" $want "*) ;;
    *) die "this system's Boost.Python is for Python ${have:-none} but '$PYTHON' is $PY_VERSION: set PYTHON to the matching interpreter." ;;
  esac
}

# --- 3. Python venv ----------------------------------------------------------
install_venv() {
  local want
  want=$(sha256_of "$ROOT/requirements.txt" "$ROOT/constraints.txt")
  if [ -x "$VENV/bin/python" ] && stamp_ok "$VENV/.requirements.sha256" "$want"; then
    say "venv: up to date"; return
  fi
  [ -x "$VENV/bin/python" ] || { say "venv: creating $VENV"; "$PYTHON" -m venv "$VENV"; }
  say "venv: installing requirements.txt (versions: constraints.txt)"
  "$VENV/bin/python" -m pip install -q "pip==$PIP_VERSION" >/dev/null 2>&1 || true
  "$VENV/bin/python" -m pip install -q -c "$ROOT/constraints.txt" -r "$ROOT/requirements.txt" ||
    die "pip install -r requirements.txt failed: no network to the Python package registry?"
  echo "$want" > "$VENV/.requirements.sha256"
}

# --- 3b. oneDNN (CPU build only) --------------------------------------------
# Downloads the pinned wheels, checks their sha256 and unpacks headers and
# one copy of the library into .caffe/dnnl. Prints an id for the recipe hash.
install_dnnl() {
  local dest=$CACHE/dnnl dl=$CACHE/downloads want="" entry spec file sha
  for entry in "${DNNL_WHEELS[@]}"; do want="$want ${entry##* }"; done
  if stamp_ok "$dest/.sha256" "$want" && [ -f "$dest/include/oneapi/dnnl/dnnl.hpp" ]; then
    echo "dnnl:$want"; return
  fi
  mkdir -p "$dl"
  for entry in "${DNNL_WHEELS[@]}"; do
    read -r spec file sha <<< "$entry"
    if [ ! -f "$dl/$file" ] || [ "$(sha256_of "$dl/$file")" != "$sha" ]; then
      say "oneDNN: downloading $spec" >&2
      rm -f "$dl/$file"
      "$VENV/bin/python" -m pip download -q --no-deps --only-binary=:all: -d "$dl" "$spec" >&2 ||
        die "pip download $spec failed: no network to the Python package registry?"
    fi
    [ "$(sha256_of "$dl/$file")" = "$sha" ] ||
      { rm -f "$dl/$file"; die "checksum mismatch for $file (file removed; rerun)"; }
  done
  rm -rf "$dest.part"
  local wheels=()
  for entry in "${DNNL_WHEELS[@]}"; do read -r spec file sha <<< "$entry"; wheels+=("$dl/$file"); done
  "$VENV/bin/python" - "$dest.part" "${wheels[@]}" <<'PY' || die "could not unpack the oneDNN wheels"
import os, sys, zipfile
dest, wheels = sys.argv[1], sys.argv[2:]
for wheel in wheels:
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            parts = name.split("/")
            # <pkg>.data/data/{include,lib,share}/...; the library once (libdnnl.so.3.2).
            if len(parts) < 4 or parts[1] != "data" or parts[2] not in ("include", "lib", "share"):
                continue
            if parts[2] == "lib" and parts[3] in ("libdnnl.so", "libdnnl.so.3"):
                continue
            out = os.path.join(dest, *parts[2:])
            os.makedirs(os.path.dirname(out), exist_ok=True)
            with z.open(name) as src, open(out, "wb") as dst:
                dst.write(src.read())
lib = os.path.join(dest, "lib")
real = [f for f in os.listdir(lib) if f.startswith("libdnnl.so.")]
assert real == ["libdnnl.so.3.2"], real
os.symlink("libdnnl.so.3.2", os.path.join(lib, "libdnnl.so.3"))
os.symlink("libdnnl.so.3", os.path.join(lib, "libdnnl.so"))
PY
  echo "$want" > "$dest.part/.sha256"
  rm -rf "$dest"; mv "$dest.part" "$dest"
  say "oneDNN: $dest (3.2, GNU OpenMP)" >&2
  echo "dnnl:$want"
}

# --- 4. Caffe source ---------------------------------------------------------
# The machine's own Debian mirror, read from its apt configuration (deb822
# .sources files or one-line sources.list), never written into the repository.
debian_mirror() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk '/^URIs:/ {for (i = 2; i <= NF; i++) print $i}' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    awk '$1 == "deb" {for (i = 2; i <= NF; i++) if ($i ~ /:\/\//) {print $i; break}}' "$f"
  done
}

fetch_debian_source() {
  local dest=$1 uri tmp
  uri=$(debian_mirror | grep -v -e security -e '^$' | grep -i debian | head -n 1 || true)
  [ -n "$uri" ] || die "no Debian mirror in this machine's apt configuration; set CAFFE_SRC=<caffe tarball or checkout> instead."
  tmp=$(mktemp -d)
  mkdir -p "$tmp/parts" "$tmp/lists/partial"
  printf 'Types: deb-src\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$uri" "$DEB_SUITE" > "$tmp/parts/caffe-src.sources"
  local opts=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$tmp/parts"
              -o "Dir::State::Lists=$tmp/lists" -o "APT::Sandbox::User=root")
  say "caffe source: apt-get source caffe=$DEB_VERSION ($DEB_SUITE, temporary deb-src entry)"
  apt-get "${opts[@]}" update -qq >/dev/null ||
    { rm -rf "$tmp"; die "could not read the $DEB_SUITE source index: no network to the Debian package registry? (or set CAFFE_SRC)"; }
  (cd "$tmp" && apt-get "${opts[@]}" source --download-only "caffe=$DEB_VERSION" >/dev/null) ||
    { rm -rf "$tmp"; die "apt-get source caffe=$DEB_VERSION failed (or set CAFFE_SRC)"; }
  mv "$tmp/$ORIG_TARBALL" "$dest.part" && mv "$dest.part" "$dest"
  rm -rf "$tmp"
}

# Prints an id of the source for the recipe hash.
prepare_source() {
  mkdir -p "$CACHE/downloads"
  if [ -n "${CAFFE_SRC:-}" ]; then
    [ -e "$CAFFE_SRC" ] || die "CAFFE_SRC=$CAFFE_SRC does not exist."
    if [ -d "$CAFFE_SRC" ]; then
      echo "dir:$(cd "$CAFFE_SRC" && (git rev-parse HEAD 2>/dev/null || pwd))"
    elif [ "$(basename "$CAFFE_SRC")" = "$ORIG_TARBALL" ]; then
      [ "$(sha256_of "$CAFFE_SRC")" = "$ORIG_SHA256" ] || die "checksum mismatch for $CAFFE_SRC"
      echo "debian:$ORIG_SHA256"
    else
      echo "tar:$(sha256_of "$CAFFE_SRC")"
    fi
    return
  fi
  local tarball="$CACHE/downloads/$ORIG_TARBALL"
  [ -f "$tarball" ] || fetch_debian_source "$tarball" >&2
  local got
  got=$(sha256_of "$tarball")
  [ "$got" = "$ORIG_SHA256" ] ||
    { rm -f "$tarball"; die "checksum mismatch for $ORIG_TARBALL: got $got, want $ORIG_SHA256 (file removed; rerun)"; }
  echo "debian:$ORIG_SHA256"
}

unpack_source() {
  local into=$1
  rm -rf "$into"; mkdir -p "$into"
  if [ -n "${CAFFE_SRC:-}" ] && [ -d "$CAFFE_SRC" ]; then
    (cd "$CAFFE_SRC" && tar --exclude=.git -cf - .) | tar -xf - -C "$into"
  else
    local tarball=${CAFFE_SRC:-$CACHE/downloads/$ORIG_TARBALL}
    tar -xzf "$tarball" -C "$into"
    # A GitHub archive has one leading folder; Debian's .orig has none.
    if [ ! -f "$into/CMakeLists.txt" ] && [ "$(ls "$into" | wc -l)" -eq 1 ]; then
      local top="$into/$(ls "$into")"
      (shopt -s dotglob && mv "$top"/* "$into"/ && rmdir "$top")
    fi
  fi
  [ -f "$into/CMakeLists.txt" ] && [ -d "$into/src/caffe" ] || die "$into does not look like a Caffe source tree."
  local p
  for p in $(variant_patches); do
    (cd "$into" && patch -p1 --forward --silent < "$p") || die "patch $(basename "$p") does not apply."
  done
  derive_dnnl_conv_tests "$into/src/caffe/test"
}

# Caffe's own convolution tests (forward values, gradient checks, groups,
# strides, dilation, 1x1, Sobel) run against the DNNL engine too: the same
# file with the layer class, and the test and helper names, renamed. One
# test compares the 2-D path with Caffe's N-D im2col path bit for bit; oneDNN
# sums in another order, so there the comparison is to 1e-4 (relative).
derive_dnnl_conv_tests() {
  { echo "#ifdef USE_DNNL  // derived from test_convolution_layer.cpp by scripts/install.sh"
    echo "#include <algorithm>"
    echo "#include <cmath>"
    echo "#define DNNL_EXPECT_CLOSE(a, b) EXPECT_NEAR(a, b, 1e-4 * std::max(1.0, std::fabs(double(b))))"
    sed -e 's/\bConvolutionLayer</DnnlConvolutionLayer</g' \
        -e 's/\bConvolutionLayerTest\b/DnnlConvolutionLayerTest/g' \
        -e 's/\bcaffe_conv\b/dnnl_reference_conv/g' \
        -e 's#"caffe/layers/conv_layer.hpp"#"caffe/layers/dnnl_conv_layer.hpp"#' \
        -e 's/EXPECT_EQ(result_2d\./DNNL_EXPECT_CLOSE(result_2d./' \
        -e 's/EXPECT_FLOAT_EQ(backward_result_2d\./DNNL_EXPECT_CLOSE(backward_result_2d./' \
        -e 's/EXPECT_EQ(backward_weight_result_2d\./DNNL_EXPECT_CLOSE(backward_weight_result_2d./' \
        "$1/test_convolution_layer.cpp"
    echo "#endif  // USE_DNNL"; } > "$1/test_dnnl_convolution_layer.cpp"
}

# The patches of this build: scripts/patches/*.patch for every build, and
# scripts/patches/cuda/*.patch (CUDA-only code) for the GPU build.
variant_patches() {
  ls "$PATCHES"/*.patch
  if [ "$VARIANT" = cuda ]; then ls "$PATCHES"/cuda/*.patch; fi
}

# --- 5. Configure, build, verify --------------------------------------------
# Fills the array CMAKE_FLAGS.
cmake_flags() {
  local py=$VENV/bin/python inc lib
  inc=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  lib=$("$py" -c 'import sysconfig, os; print(os.path.join(sysconfig.get_config_var("LIBDIR"), sysconfig.get_config_var("LDLIBRARY")))')
  CMAKE_FLAGS=(-DCMAKE_BUILD_TYPE=Release -DBLAS=Open -DUSE_OPENCV=OFF -DUSE_LEVELDB=ON -DUSE_LMDB=ON
               -DBUILD_python=ON -DBUILD_python_layer=ON -Dpython_version=3 -DBUILD_docs=OFF
               "-DPYTHON_EXECUTABLE=$py" "-DPYTHON_INCLUDE_DIR=$inc" "-DPYTHON_LIBRARY=$lib")
  if [ "$VARIANT" = cuda ]; then
    local arch=${CUDA_ARCH:-} cudnn=OFF major
    if [ -z "$arch" ]; then
      major=$(nvcc --version | sed -n 's/.*release \([0-9]*\)\..*/\1/p')
      # CUDA 13 dropped Pascal (60/61) and Volta (70); CUDA 11.8-12.x has them all.
      if [ "${major:-0}" -ge 13 ]; then arch="75 80 86 89 90"; else arch="60 61 70 75 80 86 89 90"; fi
    fi
    # cuDNN: the system's (any version from 5 on: scripts/patches/cuda/0103-* ports Caffe's
    # cuDNN layers to cuDNN 8/9), else NVIDIA's wheel (cuda_cudnn). At run time CAFFE_CUDNN=0
    # still gives Caffe's own engine, for a check or a speed comparison.
    if [ "${CUDNN:-1}" != 0 ] && cuda_cudnn; then cudnn=ON; fi
    CMAKE_FLAGS+=(-DCPU_ONLY=OFF "-DUSE_CUDNN=$cudnn" -DCUDA_ARCH_NAME=Manual
                  "-DCUDA_ARCH_BIN=$arch" "-DCUDA_ARCH_PTX=${arch##* }")
    cuda_math_libs
  else
    CMAKE_FLAGS+=(-DCPU_ONLY=ON -DUSE_DNNL=ON "-DDNNL_ROOT=$CACHE/dnnl")
  fi
}

# A full CUDA toolkit (the Docker image's) has cuBLAS and cuRAND; a minimal one
# (nvcc and cudart only) gets them from NVIDIA's Python wheels, installed into
# .caffe/cuda-libs, whose headers and libraries CMake is then pointed at.
CUDA_WHEELS=("nvidia-cublas==13.10.0.20" "nvidia-curand==10.4.5.25")
cuda_math_libs() {
  local cuda_home
  cuda_home=$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")
  if ls "$cuda_home"/lib64/libcublas.so* "$cuda_home"/targets/*/lib/libcublas.so* >/dev/null 2>&1; then
    return
  fi
  local libs=$CACHE/cuda-libs
  if [ ! -f "$libs/.done" ]; then
    say "cuBLAS/cuRAND missing from $cuda_home: installing ${CUDA_WHEELS[*]} into $libs"
    rm -rf "$libs"
    "$VENV/bin/python" -m pip install -q --no-deps --target "$libs" "${CUDA_WHEELS[@]}" ||
      die "could not install cuBLAS/cuRAND wheels; install the full CUDA toolkit instead."
    touch "$libs/.done"
  fi
  local cu
  cu=$(dirname "$(find "$libs" -name cublas_v2.h | head -n 1)")/..
  cu=$(cd "$cu" && pwd)
  CMAKE_FLAGS+=("-DCUDA_cublas_LIBRARY=$(ls "$cu"/lib/libcublas.so.* | head -n 1)"
                "-DCUDA_curand_LIBRARY=$(ls "$cu"/lib/libcurand.so.* | head -n 1)"
                "-DCMAKE_CXX_FLAGS=-I$cu/include" "-DCUDA_NVCC_FLAGS=-I$cu/include")
}

# cuDNN for --cuda: a system cuDNN (a CUDA image's /usr/include/cudnn*.h) is found by Caffe's
# CMake; without one, NVIDIA's wheel for nvcc's CUDA major goes into .caffe/cudnn-libs like
# cuBLAS (headers + libcudnn.so.9; its sub-libraries are loaded at run time from beside it).
# Without either (CUDA 11, no network), the build goes on without cuDNN and says so.
CUDNN_WHEELS=([12]="nvidia-cudnn-cu12==9.13.0.50" [13]="nvidia-cudnn-cu13==9.13.0.50")
cuda_cudnn() {
  if ls /usr/include/cudnn.h /usr/include/*/cudnn.h /usr/local/cuda/include/cudnn.h >/dev/null 2>&1; then
    return 0
  fi
  local major wheel="" libs=$CACHE/cudnn-libs
  major=$(nvcc --version | sed -n 's/.*release \([0-9]*\)\..*/\1/p')
  [ -n "$major" ] && wheel=${CUDNN_WHEELS[$major]:-}
  if [ -z "$wheel" ]; then
    say "no cuDNN here and none pinned for CUDA ${major:-?}: building without cuDNN (im2col + cuBLAS)"
    return 1
  fi
  if [ "$(cat "$libs/.done" 2>/dev/null)" != "$wheel" ]; then
    say "cuDNN missing: installing $wheel into $libs"
    rm -rf "$libs"
    if ! "$VENV/bin/python" -m pip install -q --no-deps --target "$libs" "$wheel"; then
      say "could not install $wheel: building without cuDNN (im2col + cuBLAS)"
      return 1
    fi
    echo "$wheel" > "$libs/.done"
  fi
  local cu
  cu=$(dirname "$(find "$libs" -name cudnn.h | head -n 1)")/..
  cu=$(cd "$cu" && pwd)
  CMAKE_FLAGS+=("-DCUDNN_INCLUDE=$cu/include" "-DCUDNN_LIBRARY=$cu/lib/libcudnn.so.9")
}

build_caffe() {
  local source_id=$1 dir=$CACHE/$VARIANT numpy_v recipe
  cmake_flags
  numpy_v=$("$VENV/bin/python" -c 'import numpy; print(numpy.__version__)')
  recipe=$( { echo "recipe=$RECIPE_VERSION $source_id $VARIANT ${CMAKE_FLAGS[*]} numpy=$numpy_v cpp_tests=$CPP_TESTS";
              cat $(variant_patches); } | sha256sum | cut -c1-64)
  if stamp_ok "$dir/RECIPE" "$recipe" && [ -x "$dir/build/tools/caffe" ]; then
    say "caffe ($VARIANT): built, recipe unchanged"
    return
  fi
  say "caffe ($VARIANT): building in $dir (a few minutes)"
  rm -rf "$dir"
  unpack_source "$dir/src"
  mkdir -p "$dir/build"
  local t0=$SECONDS
  (cd "$dir/build" && cmake ../src "${CMAKE_FLAGS[@]}" > "$dir/cmake.log" 2>&1) ||
    die "cmake failed; see $dir/cmake.log"
  (cd "$dir/build" && make -j"$JOBS" caffe caffe.bin pycaffe > "$dir/make.log" 2>&1) ||
    die "make failed; see $dir/make.log (last lines: $(tail -n 3 "$dir/make.log" | tr '\n' ' '))"
  say "caffe ($VARIANT): compiled in $((SECONDS - t0)) s"
  verify_caffe "$dir"
  echo "$recipe" > "$dir/RECIPE"
}

verify_caffe() {
  local dir=$1
  if [ "$CPP_TESTS" = none ]; then say "caffe C++ tests: skipped (--no-cpp-tests)"; return; fi
  if [ "$VARIANT" = cuda ] && ! nvidia-smi >/dev/null 2>&1; then
    say "caffe C++ tests: no GPU here; GPU build compiled but not run"; return
  fi
  local t0=$SECONDS filter=()
  [ "$VARIANT" = cpu ] && filter=(--gtest_filter=-*GPU*)
  (cd "$dir/build" && make -j"$JOBS" test.testbin > "$dir/make-tests.log" 2>&1) ||
    die "building Caffe's C++ tests failed; see $dir/make-tests.log"
  # Caffe's tests read src/caffe/test/test_data relative to the source root.
  # The DNNL engine and cuBLAS run them in fp32 (Caffe's gradient-check tolerances
  # are fp32's); bf16 is checked against fp32 by tests/test_dnnl_engine.py.
  (cd "$dir/src" && CAFFE_DNNL_MATH=fp32 CAFFE_CUDA_MATH=fp32 "$dir/build/test/test.testbin" "${filter[@]}" > "$dir/cpp-tests.log" 2>&1) ||
    die "Caffe's C++ tests failed; see $dir/cpp-tests.log"
  say "caffe C++ tests: $(grep -E '^\[  PASSED  \]' "$dir/cpp-tests.log") in $((SECONDS - t0)) s"
}

# --- 6. Make pycaffe and the caffe tool visible from the venv ---------------
link_into_venv() {
  local dir=$CACHE/$VARIANT site
  if [ "$VARIANT" = cuda ] && ! nvidia-smi >/dev/null 2>&1 && [ -x "$CACHE/cpu/build/tools/caffe" ]; then
    say "GPU Caffe compiled in $dir; no GPU here, so the venv keeps using the CPU build"
    dir=$CACHE/cpu
  elif [ "$VARIANT" = cuda ] && ! nvidia-smi >/dev/null 2>&1; then
    # e.g. docker build: no GPU while building, and the GPU build is the only one (it runs on
    # the CPU too, and on the GPU where the container is started with one)
    say "GPU Caffe compiled in $dir; no GPU here and no CPU build: the venv uses the GPU build"
  fi
  site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  echo "$dir/src/python" > "$site/caffe.pth"
  ln -sfn "$dir/build/tools/caffe" "$VENV/bin/caffe"
  "$VENV/bin/python" - <<'PY' || die "pycaffe smoke test failed"
import caffe, numpy as np
from caffe.proto import caffe_pb2
caffe.set_mode_cpu()
b = caffe.io.array_to_blobproto(np.arange(6, dtype=np.float32).reshape(1, 1, 2, 3))
assert list(b.shape.dim) == [1, 1, 2, 3] and caffe_pb2.BlobProto.FromString(b.SerializeToString()).data[5] == 5
PY
  say "pycaffe: import caffe OK (${dir##*/} build); caffe tool: $VENV/bin/caffe"
}

# --- 7. The project as an editable package (pyproject.toml) -----------------
# `import restoration` from any folder and the `stem-restore` command; redone only when
# pyproject.toml changes, the install is gone, or it points at another checkout
# (stamp .venv/.package.sha256).
install_package() {
  local want
  want=$(sha256_of "$ROOT/pyproject.toml")
  if stamp_ok "$VENV/.package.sha256" "$want" && [ -x "$VENV/bin/stem-restore" ] &&
    (cd / && "$VENV/bin/python" -c 'import importlib.util as u, sys
s = u.find_spec("restoration"); sys.exit(s is None or s.origin != sys.argv[1])' \
      "$ROOT/restoration/__init__.py"); then
    say "package: up to date"; return
  fi
  say "package: pip install -e . (stem_restore, restoration, datagen; stem-restore command)"
  "$VENV/bin/python" -m pip install -q --no-deps -e "$ROOT" >/dev/null 2>&1 ||
    die "pip install -e $ROOT failed (rerun it by hand to see why)"
  echo "$want" > "$VENV/.package.sha256"
}

main() {
  if [ "$FETCH_ONLY" = 1 ]; then
    command -v apt-get >/dev/null 2>&1 || die "--fetch-source needs apt-get (Debian)."
    prepare_source >/dev/null
    say "source: $CACHE/downloads/$ORIG_TARBALL (sha256 verified)"
    return
  fi
  check_prerequisites
  install_apt_packages
  check_boost_python
  install_venv
  local source_id
  source_id=$(prepare_source)
  if [ "$VARIANT" = cpu ]; then source_id="$source_id $(install_dnnl)"; fi
  build_caffe "$source_id"
  link_into_venv
  install_package
  say "done"
}

# Sourced (by tests) it only defines the steps; executed, it runs them.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then main; fi
