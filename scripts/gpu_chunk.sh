#!/usr/bin/env bash
# One chunk of a training run on a GPU machine that has only the NVIDIA driver, CUDA 13's
# cuBLAS (and cuDNN 9, for a build with cuDNN) and Python 3 (a rented or lent GPU; see
# scripts/gpu_bundle.sh), from a checkout:
#
#   bash scripts/gpu_chunk.sh BUNDLE[,BUNDLE...] SECONDS OUTDIR [run_training.sh options]
#   bash scripts/gpu_chunk.sh caffe-gpu.tar.xz 470 /tmp/out --run runs/long96d --resume-from models/checkpoint
#
# It unpacks the first bundle whose libraries resolve (env.sh), checks cuDNN against Caffe's
# own engine if the build has it (benchmarks/engine_check.py: CAFFE_CUDNN=0 unless cuDNN
# agrees and is faster), times the net on GPU 0 in fp32 and TF32 while the first
# draw of pairs is written (benchmarks/bench_train.py --gpu 0), trains
# `run_training.sh --gpu 0 --for SECONDS [options]`, and copies what a CPU machine needs to
# go on into OUTDIR (at most 8 files): the run's newest snapshot pair, logs/adam.log (and
# sgd.log), loss.png, bench.txt and the run's output train.out.  Back home, with RUN the
# same run folder:
#
#   cp OUTDIR/*_iter_*.caffemodel OUTDIR/*_iter_*.solverstate RUN/snapshots/ && cp OUTDIR/*.log RUN/logs/
#   bash run_training.sh --run RUN --train-only      # goes on on the CPU, or --save-checkpoint DIR
#
# SECONDS counts from the start of run_training.sh (data included); the command as a whole
# takes ~20 s longer (unpacking, loss curve, copies), ~30 s more with the cuDNN check.
# Environment: GPU (default 0; empty: train on the CPU, as the tests do with a bundle of the
# CPU build), BENCH=0 skips the timing,
# BENCH_SHAPES="32x96 32x192 128x96" (or comma-separated) times those batch x patch shapes
# (default 32x96: the run's).
set -uo pipefail
[ $# -ge 3 ] || { sed -n '2,26p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }
BUNDLE=$1 SECONDS_FOR=$2 OUTDIR=$3
shift 3
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1
mkdir -p "$OUTDIR" || exit 1
OUTDIR=$(cd "$OUTDIR" && pwd)
say() { printf '[gpu_chunk] %s\n' "$*"; }

say "$(date -u +%FT%TZ) $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -n 1)"
say "cpu:$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2) x $(nproc)"
# BUNDLE may list several, comma-separated: the first whose libraries all resolve here is used
# (e.g. a build with cuDNN, then one without for a machine that has no cuDNN).
CG=
for b in ${BUNDLE//,/ }; do
  CG=$(mktemp -d /tmp/caffe-gpu.XXXXXX)
  # shellcheck source=/dev/null
  if tar -xJf "$b" -C "$CG" && . "$CG/env.sh"; then say "bundle $b"; break; fi
  say "bundle $b: not usable here"; rm -rf "$CG"; CG=
done
[ -n "$CG" ] || { say "no usable bundle in $BUNDLE"; exit 1; }
.venv/bin/python -c "from stem_restore.network import caffe_pb2; caffe_pb2()" || { say "the project's Python does not import"; exit 1; }
GPU=${GPU-0}

rm -f "$OUTDIR/bench.txt"  # this chunk's timings and engine check only

# A build with cuDNN trains on it only if it computes what Caffe's own engine computes (loss
# and every layer's gradient, benchmarks/engine_check.py) and is faster; else CAFFE_CUDNN=0.
# The bundle's libcaffe names cuDNN among its needs only when found through the bundle's lib/
# (its RUNPATH is the build machine's).
libs=$(LD_LIBRARY_PATH="$CG/lib" ldd "$CG/bin/caffe" 2>/dev/null || true)
if [ -z "$GPU" ]; then
  :
elif [[ "$libs" != *libcudnn* ]]; then
  say "convolution engine: caffe (im2col + cuBLAS; a build without cuDNN)"
elif [ "${CAFFE_CUDNN:-1}" = 0 ]; then
  say "convolution engine: caffe (CAFFE_CUDNN=0 given)"
else
  check=$(mktemp)
  timeout -k 10 240 .venv/bin/python benchmarks/engine_check.py --gpu "${GPU%%,*}" > "$check" 2>&1
  grep -v '^[IWE][0-9]' "$check" | tail -n 30 | tee -a "$OUTDIR/bench.txt"
  engine=$(sed -n 's/^engine: \([a-z]*\).*/\1/p' "$check" | tail -n 1)
  rm -f "$check"
  [ "$engine" = cudnn ] || export CAFFE_CUDNN=0
  say "convolution engine: ${engine:-caffe (the check did not finish)}"
fi

# run_training.sh writes data on the CPUs first; the GPU is timed meanwhile.
bash run_training.sh ${GPU:+--gpu "$GPU"} --for "$SECONDS_FOR" "$@" > "$OUTDIR/train.out" 2>&1 &
train=$!
BENCH_SHAPES=${BENCH_SHAPES:-32x96}
if [ "${BENCH:-1}" = 1 ]; then
  for shape in ${BENCH_SHAPES//,/ }; do
    .venv/bin/python benchmarks/bench_train.py ${GPU:+--gpu "${GPU%%,*}"} --batch "${shape%x*}" --size "${shape#*x}" \
      --iterations 10 2>&1 | tee -a "$OUTDIR/bench.txt"
  done
fi
wait "$train"; rc=$?
say "run_training.sh exit status $rc"
tail -n 8 "$OUTDIR/train.out"

# The run folder: as run_training.sh printed it, else its --run argument; whatever happened,
# its newest whole snapshot pair is what the next chunk needs.
run=$(sed -n 's/.*done (--for [0-9]*): \(.*\)\/snapshots, .*/\1/p; s/.*done (--train-only): \(.*\)\/final.caffemodel, .*/\1/p' \
  "$OUTDIR/train.out" | tail -n 1)
run=${run:-$(sed -n 's/.*checkpoint .* copied into \(.*\)\/snapshots$/\1/p' "$OUTDIR/train.out" | tail -n 1)}
prev=
for a in "$@"; do [ "$prev" != --run ] || run=${run:-$a}; prev=$a; done
[ -n "$run" ] && [ -d "$run" ] || { say "no run folder (train.out names none; give --run)"; exit 1; }
state=
for f in $(ls -t "$run"/snapshots/*_iter_*.solverstate 2>/dev/null); do
  if .venv/bin/python -m stem_restore.snapshots whole "$f"; then state=$f; break; fi
done
[ -n "$state" ] || { say "no whole snapshot in $run/snapshots"; exit 1; }
cp "$state" "${state%.solverstate}.caffemodel" "$run"/logs/*.log "$OUTDIR/"
[ ! -f "$run/loss.png" ] || cp "$run/loss.png" "$OUTDIR/"
grep -hE "Iteration [0-9]+ \(" "$run"/logs/*.log | tail -n 2
say "newest snapshot $(basename "$state"); OUTDIR: $(ls "$OUTDIR" | tr '\n' ' ')"
exit "$rc"
