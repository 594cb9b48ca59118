#!/usr/bin/env bash
# Train the paper's network end to end with real Caffe:
#   data (datagen) -> Adam -> SGD (from Adam's weights) -> loss curve -> evaluation -> restored examples
#
#   bash run_training.sh --preset quick            # ~20 min on a 2-core CPU
#   bash run_training.sh --preset paper --gpu 0    # the full schedule, on a GPU
#   bash run_training.sh --preset paper --gpu 0,1  # Caffe's own data-parallel multi-GPU training
#
# Everything of one run lives under one folder (default runs/<preset>):
#   config.env  train.prototxt  deploy.prototxt  adam.prototxt  sgd.prototxt   (files as used)
#   data/{train,test}/   logs/{adam,sgd}.log   snapshots/   loss.png
#   final.caffemodel   eval/   restored/
# Killed at any point and rerun with the same arguments, it resumes: finished data
# shards are kept, a running stage restarts from its last .solverstate, a finished
# stage is not rerun.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PY="$ROOT/.venv/bin/python"
CAFFE="$ROOT/.venv/bin/caffe"
PRESET=quick
RUN=
GPU=
WORKERS=$(nproc)

die() { printf 'run_training: ERROR: %s\n' "$*" >&2; exit 1; }
usage() { awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "$0"; }
say() { printf '\033[1m[run_training]\033[0m %s\n' "$*"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --preset) PRESET=${2:?--preset needs a name}; shift ;;
    --run) RUN=${2:?--run needs a folder}; shift ;;
    --gpu) GPU=${2:?--gpu needs a device id or a list like 0,1}; shift ;;
    --workers) WORKERS=${2:?--workers needs a number}; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
  shift
done

# A preset is a folder with run.env, adam.prototxt and sgd.prototxt: a name under
# solvers/, or a path to such a folder.
case "$PRESET" in
  */*) [ -d "$PRESET" ] || die "preset folder '$PRESET' not found"; SOLVERS=$(cd "$PRESET" && pwd) ;;
  *) SOLVERS="$ROOT/solvers/$PRESET" ;;
esac
[ -f "$SOLVERS/run.env" ] || die "unknown preset '$PRESET' (have: $(ls "$ROOT/solvers" | tr '\n' ' '))"
[ -x "$PY" ] && [ -x "$CAFFE" ] || die "Caffe is not installed: run 'bash scripts/install.sh' first."
RUN=${RUN:-$ROOT/runs/$(basename "$SOLVERS")}
mkdir -p "$RUN"/{data,logs,snapshots}
RUN=$(cd "$RUN" && pwd)

# --- the run's configuration, frozen at its first start ----------------------
if [ ! -f "$RUN/config.env" ]; then
  cp "$SOLVERS/run.env" "$RUN/config.env"
  cp "$SOLVERS/adam.prototxt" "$SOLVERS/sgd.prototxt" "$RUN/"
  cp "$ROOT/prototxt/deploy.prototxt" "$RUN/deploy.prototxt"
fi
cmp -s "$SOLVERS/run.env" "$RUN/config.env" ||
  die "$RUN was started with other settings (config.env differs from $SOLVERS/run.env): use another --run folder."
# shellcheck source=solvers/quick/run.env
. "$RUN/config.env"
# The training net, with this preset's batch size; caffe runs inside $RUN, so
# the net's relative paths (data/train/list.txt, ...) point into the run.
sed "s/batch_size: [0-9]*/batch_size: $BATCH_SIZE/" "$ROOT/prototxt/$TRAIN_NET" > "$RUN/train.prototxt"

CAFFE_ARGS=()
[ -n "$GPU" ] && CAFFE_ARGS+=("--gpu=$GPU")

# --- 1. data ----------------------------------------------------------------
make_data() {  # split count seed
  local split=$1 count=$2 seed=$3
  say "data/$split: $count pairs of ${PATCH_SIZE}x${PATCH_SIZE}, preset $DATAGEN_PRESET, seed $seed"
  "$PY" -m datagen --preset "$DATAGEN_PRESET" --count "$count" --size "$PATCH_SIZE" \
    --out "$RUN/data/$split" --format hdf5 --seed "$seed" --workers "$WORKERS"
}
cd "$ROOT"
make_data train "$TRAIN_COUNT" "$TRAIN_SEED"
make_data test "$TEST_COUNT" "$TEST_SEED"

# --- 2./3. the two solver stages ---------------------------------------------
# A snapshot is whole when its .solverstate parses, holds a history blob for
# every parameter blob (Adam keeps two per blob) and its .caffemodel exists:
# a run killed while Caffe was writing one resumes from the one before.
snapshot_ok() {  # path
  "$PY" - "$1" <<'PY' 2>/dev/null
import os, sys
from caffe.proto import caffe_pb2
state = caffe_pb2.SolverState.FromString(open(sys.argv[1], "rb").read())
model = os.path.join(os.path.dirname(sys.argv[1]), os.path.basename(state.learned_net))
assert state.iter > 0 and len(state.history) in (24, 48) and os.path.getsize(model) > 0
PY
}

latest_state() {  # prefix -> newest whole .solverstate, or nothing
  local f it
  for f in "$RUN/snapshots/$1"_iter_*.solverstate; do
    [ -f "$f" ] || continue
    it=${f##*/}; it=${it#"$1"_iter_}; echo "${it%.solverstate} $f"
  done | sort -rn | while read -r it f; do
    if snapshot_ok "$f"; then echo "$f"; break; fi
    say "$1: skipping incomplete snapshot $(basename "$f")" >&2
  done
}

train_stage() {  # name max_iter [--weights=...]
  local name=$1 max_iter=$2 init=${3:-} state
  # Finished = the last snapshot is whole (Caffe writes the .caffemodel first, then the .solverstate).
  if [ -f "$RUN/snapshots/${name}_iter_${max_iter}.solverstate" ] &&
     snapshot_ok "$RUN/snapshots/${name}_iter_${max_iter}.solverstate"; then
    say "$name: finished earlier (${name}_iter_${max_iter}.caffemodel), not rerun"; return
  fi
  state=$(latest_state "$name")
  local args=("--solver=$name.prototxt" "${CAFFE_ARGS[@]}")
  if [ -n "$state" ]; then
    say "$name: resuming from $(basename "$state")"
    args+=("--snapshot=snapshots/$(basename "$state")")
  elif [ -n "$init" ]; then
    args+=("$init")
  fi
  say "$name: caffe train ${args[*]}  (log: logs/$name.log)"
  echo "### run_training.sh $(date -u +%FT%TZ): caffe train ${args[*]}" >> "$RUN/logs/$name.log"
  # The log is part of the run (loss curve, checklist): INFO level, whatever the caller set.
  (cd "$RUN" && GLOG_minloglevel=0 "$CAFFE" train "${args[@]}" 2>> "logs/$name.log") ||
    die "$name stage failed; see $RUN/logs/$name.log"
}

train_stage adam "$ADAM_MAX_ITER"
# SGD starts from Adam's final weights; a solverstate cannot cross solver types.
train_stage sgd "$SGD_MAX_ITER" "--weights=snapshots/adam_iter_${ADAM_MAX_ITER}.caffemodel"
if ! [ "$RUN/final.caffemodel" -nt "$RUN/snapshots/sgd_iter_${SGD_MAX_ITER}.caffemodel" ]; then
  cp "$RUN/snapshots/sgd_iter_${SGD_MAX_ITER}.caffemodel" "$RUN/final.caffemodel.part"
  mv "$RUN/final.caffemodel.part" "$RUN/final.caffemodel"
fi

# --- 4. loss curve, evaluation, restored examples ----------------------------
# (each step is skipped when its output is newer than final.caffemodel)
fresh() { [ "$1" -nt "$RUN/final.caffemodel" ]; }
fresh "$RUN/loss.png" || "$PY" -m evaluate.losscurve "$RUN/logs" -o "$RUN/loss.png"
fresh "$RUN/eval/results.md" || "$PY" -m evaluate --model "$RUN/deploy.prototxt" --weights "$RUN/final.caffemodel" \
  --preset "$DATAGEN_PRESET" --size "$EVAL_SIZE" --count "$EVAL_COUNT" --seed "$EVAL_SEED" \
  --out "$RUN/eval" --train-log-dir "$RUN/logs" ${GPU:+--gpu "${GPU%%,*}"} ${EVAL_ARGS:-}
if [ -d "$ROOT/examples" ] && [ "${RESTORE_EXAMPLES:-1}" = 1 ] && ! fresh "$RUN/restored"; then
  "$PY" "$ROOT/restore.py" "$ROOT/examples" -o "$RUN/restored" --model "$RUN/deploy.prototxt" \
    --weights "$RUN/final.caffemodel" --figure --overwrite ${GPU:+--gpu "${GPU%%,*}"}
fi
say "done: $RUN/final.caffemodel, $RUN/loss.png, $RUN/eval/results.md"
