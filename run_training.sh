#!/usr/bin/env bash
# Train the paper's network end to end with real Caffe:
#   data (datagen) -> Adam -> SGD (from Adam's weights) -> loss curve -> evaluation -> restored examples
#
#   bash run_training.sh --schedule quick            # ~15-20 min on a 2-core CPU
#   bash run_training.sh --schedule paper --gpu 0    # the full schedule, on a GPU
#   bash run_training.sh --schedule paper --gpu 0,1  # Caffe's own data-parallel multi-GPU training
#
# A schedule is a folder solvers/<name>/ (or a path to one): run.env (data sizes,
# seeds, the datagen preset = the TOML the data are simulated from, optional INIT =
# msra | identity: Adam's first weights, optional LOSS_FLOOR_DB + LOSS_SCALE: per-pair
# loss weights, datagen/weights.py, with TRAIN_NET=train_hdf5_weighted.prototxt, optional
# DRAW_PASSES: fresh training pairs after every DRAW_PASSES passes, see DRAW_PASSES
# below), adam.prototxt and sgd.prototxt (the two chained solvers; max_iter lives only there).
# Everything of one run lives under one folder (default runs/<schedule>), written at
# its first start and read from there ever after (resume, evaluation, ship_model.sh):
#   config.env  adam.prototxt  sgd.prototxt  train.prototxt  deploy.prototxt
#   datagen.toml  [heldout.toml]          (the run's frozen set-up; the presets resolved)
#   [datagen-draw<D>.toml ...]            (DRAW_PASSES: the preset of draws D and later, see
#                                          draw_preset; the test set keeps datagen.toml)
#   [heldout-draw<D>.toml ...]            (the held-out split's physics from draw D on: what
#                                          the end-of-run evaluation reads beside the above)
#   data/{train,test}/ [data/train_weighted/]   (DRAW_PASSES: data/train-draw<d>[_weighted]/)
#   logs/{adam,sgd}.log   snapshots/   loss.png
#   final.caffemodel   eval/   restored/
# Killed at any point and rerun with the same arguments, it resumes: finished data
# shards are kept, a running stage restarts from its last .solverstate (exactly: the
# shard list is rotated to where that snapshot stopped), a finished stage is not rerun.
#
# Options:  --schedule NAME|DIR  solvers/<NAME> or a schedule folder (default quick;
#                              not needed to resume a run or a checkpoint). Old name: --preset
#           --run DIR          the run's folder (default runs/<schedule>, or runs/<checkpoint
#                              folder name> with --resume-from); a folder with no run in it
#                              yet needs --schedule or --resume-from
#           --gpu N[,M]        train on GPU(s)
#           --workers N        datagen processes (default: nproc)
#           --weights FILE     fine-tune: Adam starts from FILE's weights (e.g. the shipped
#                              models/stem_restore.caffemodel, with a schedule whose datagen
#                              preset simulates your microscope) instead of random ones;
#                              or FILE = another run's adam_iter_N.solverstate (its
#                              .caffemodel beside it): Adam goes on from there (iteration N,
#                              its moments, its rate at N) with this schedule's data, batch
#                              and patch size (the long run's 8 x 64^2 -> 32 x 96^2 switch);
#                              ignored once the run has snapshots
#           --resume-from DIR  a checkpoint folder (e.g. models/checkpoint/), written by
#                              --save-checkpoint: the run's frozen set-up and one
#                              <stage>_iter_N.caffemodel + .solverstate pair. A new run folder
#                              is set up from it; the data are regenerated from its seeds
#                              (deterministic) and the stage resumes exactly
#           --train-only       stop after training and the loss curve (no evaluation/examples)
#           --for SECONDS      stop training after SECONDS of wall time (a chunk on a rented or lent
#                              GPU): Caffe is interrupted, and its stop snapshot is kept only where
#                              the run resumes exactly from it (a shard boundary), else the last
#                              periodic one stands; then like --train-only
#           --save-checkpoint DIR  write the run's frozen set-up, its newest whole snapshot pair,
#                              logs and loss.png to DIR (replacing it) and exit: what a fresh
#                              machine needs to --resume-from (e.g. models/checkpoint)
# Environment: CAFFE_DNNL_MATH=auto|fp32|bf16|off  the CPU build's convolution engine
#              (default auto: bf16 on CPUs with AVX512-BF16 or AMX, else fp32; off: Caffe's own im2col path)
#              CAFFE_CUDA_MATH=tf32|fp32  the GPU build's cuBLAS math (default tf32 on sm_80+)
#              PREFETCH_DRAWS=auto|1|0  with DRAW_PASSES, write the next draw in the background
#              while Caffe trains (default auto: with --gpu, where the CPU is otherwise idle)
set -euo pipefail
# The script is one { ... } group: bash reads and parses it whole before running
# any of it, so editing this file while a run is going cannot change that run.
{
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PY="$ROOT/.venv/bin/python"
CAFFE="$ROOT/.venv/bin/caffe"
SCHEDULE=
RUN=
GPU=
WORKERS=$(nproc)
INIT_WEIGHTS=
RESUME_FROM=
TRAIN_ONLY=0
STOP_AFTER=
TIME_UP=0
SAVE_CHECKPOINT=
#: The frozen set-up of a run (and of a checkpoint): written once, read ever after.
FROZEN=(config.env adam.prototxt sgd.prototxt train.prototxt deploy.prototxt datagen.toml)

die() { printf 'run_training: ERROR: %s\n' "$*" >&2; exit 1; }
usage() { awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "$0"; }
say() { printf '\033[1m[run_training]\033[0m %s\n' "$*"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --schedule|--preset) SCHEDULE=${2:?$1 needs a schedule name or folder}; shift ;;
    --run) RUN=${2:?--run needs a folder}; shift ;;
    --gpu) GPU=${2:?--gpu needs a device id or a list like 0,1}; shift ;;
    --workers) WORKERS=${2:?--workers needs a number}; shift ;;
    --weights) INIT_WEIGHTS=${2:?--weights needs a .caffemodel}; shift ;;
    --resume-from) RESUME_FROM=${2:?--resume-from needs a checkpoint folder}; shift ;;
    --train-only) TRAIN_ONLY=1 ;;
    --for) STOP_AFTER=${2:?--for needs a number of seconds}; shift ;;
    --save-checkpoint) SAVE_CHECKPOINT=${2:?--save-checkpoint needs a folder}; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
  shift
done
if [ -n "$STOP_AFTER" ]; then
  [[ "$STOP_AFTER" =~ ^[1-9][0-9]*$ ]] || die "--for $STOP_AFTER: expected a whole number of seconds"
  DEADLINE=$((SECONDS + STOP_AFTER)); TRAIN_ONLY=1
fi
[ -x "$PY" ] && [ -x "$CAFFE" ] || die "Caffe is not installed: run 'bash scripts/install.sh' first."
abspath() { (cd "$(dirname "$1")" && echo "$(pwd)/$(basename "$1")"); }
# Every option checked before anything is written: a typo must not set up a run folder (its
# frozen preset would outlive the typo) nor start data generation.
[[ "$WORKERS" =~ ^[1-9][0-9]*$ ]] || die "--workers $WORKERS: expected a positive whole number"
if [ -n "$GPU" ]; then
  [[ "$GPU" =~ ^[0-9]+(,[0-9]+)*$ ]] || die "--gpu $GPU: expected a device number or a list like 0,1"
  # A CPU-only build aborts at once, saying so (any other problem is Caffe's to report at training)
  query=$("$CAFFE" device_query -gpu "${GPU%%,*}" 2>&1 >/dev/null || true)
  if [[ "$query" == *CPU-only* ]]; then
    die "--gpu $GPU: this Caffe build is CPU-only: run without --gpu, or build it with CUDA (bash scripts/install.sh --cuda)"
  fi
fi
if [ -n "$INIT_WEIGHTS" ]; then
  [ -f "$INIT_WEIGHTS" ] && [ -s "$INIT_WEIGHTS" ] || die "--weights $INIT_WEIGHTS: no such file (or empty, or a folder)"
  case "$INIT_WEIGHTS" in
    *.caffemodel|*.solverstate) ;;
    *) die "--weights $INIT_WEIGHTS: expected a .caffemodel or another run's adam_iter_N.solverstate" ;;
  esac
  INIT_WEIGHTS=$(abspath "$INIT_WEIGHTS")
fi

# --- where the run's set-up comes from --------------------------------------
# A schedule folder: solvers/<name>, or a path to a folder with the same files.
SOLVERS=
if [ -n "$SCHEDULE" ]; then
  case "$SCHEDULE" in
    */*) [ -d "$SCHEDULE" ] || die "schedule folder '$SCHEDULE' not found"; SOLVERS=$(cd "$SCHEDULE" && pwd) ;;
    *) SOLVERS="$ROOT/solvers/$SCHEDULE" ;;
  esac
  [ -f "$SOLVERS/run.env" ] || die "unknown schedule '$SCHEDULE' (have: $(ls "$ROOT/solvers" | tr '\n' ' '))"
fi
# A checkpoint: the frozen set-up of the run it came from and one snapshot pair.
CKPT_STATE=
if [ -n "$RESUME_FROM" ]; then
  [ -d "$RESUME_FROM" ] || die "--resume-from $RESUME_FROM: not a folder"
  RESUME_FROM=$(cd "$RESUME_FROM" && pwd)
  n_states=$(find "$RESUME_FROM" -maxdepth 1 -name '*_iter_*.solverstate' | wc -l)
  [ "$n_states" = 1 ] || die "--resume-from $RESUME_FROM: expected one *_iter_N.solverstate, found $n_states"
  CKPT_STATE=$(find "$RESUME_FROM" -maxdepth 1 -name '*_iter_*.solverstate')
  [ -s "${CKPT_STATE%.solverstate}.caffemodel" ] ||
    die "--resume-from: $(basename "$CKPT_STATE") has no $(basename "${CKPT_STATE%.solverstate}.caffemodel") beside it"
  for f in "${FROZEN[@]}"; do
    [ -s "$RESUME_FROM/$f" ] || die "--resume-from $RESUME_FROM: $f missing (a checkpoint holds the run's set-up: ${FROZEN[*]})"
  done
fi
if [ -z "$RUN" ]; then
  if [ -n "$SOLVERS" ]; then RUN=$ROOT/runs/$(basename "$SOLVERS")
  elif [ -n "$RESUME_FROM" ]; then RUN=$ROOT/runs/$(basename "$RESUME_FROM")
  else SOLVERS=$ROOT/solvers/quick; RUN=$ROOT/runs/quick
  fi
elif [ -z "$SOLVERS" ] && [ -z "$RESUME_FROM" ] && [ ! -f "$RUN/config.env" ]; then
  die "--run $RUN: no run set up there (no config.env): name its --schedule or --resume-from a checkpoint to start one"
fi
mkdir -p "$RUN"/{data,logs,snapshots}
RUN=$(cd "$RUN" && pwd)

# --- the run's set-up, frozen at its first start ----------------------------
# From a checkpoint: its frozen files as they are.  From a schedule: run.env as
# config.env, both solvers, the training net with the schedule's batch size (its
# shards read in the order of train_list.txt, see write_train_list), the deploy
# net, and the datagen preset(s) written out whole (python -m datagen resolve), so
# that later edits of datagen/presets/ cannot change what the run's data are.
# config.env is written last: a run folder without it has no set-up yet.
freeze_from_schedule() {
  local env="$SOLVERS/run.env" DATAGEN_PRESET HELDOUT_PRESET= BATCH_SIZE TRAIN_NET
  # shellcheck source=solvers/quick/run.env
  . "$env"
  cp "$SOLVERS/adam.prototxt" "$SOLVERS/sgd.prototxt" "$RUN/"
  sed -e "s/batch_size: [0-9]*/batch_size: $BATCH_SIZE/" -e "s#\"data/train/list.txt\"#\"train_list.txt\"#" \
    "$ROOT/prototxt/$TRAIN_NET" > "$RUN/train.prototxt"
  cp "$ROOT/prototxt/deploy.prototxt" "$RUN/deploy.prototxt"
  "$PY" -m datagen resolve "$DATAGEN_PRESET" -o "$RUN/datagen.toml"
  if [ -n "$HELDOUT_PRESET" ]; then "$PY" -m datagen resolve "$HELDOUT_PRESET" -o "$RUN/heldout.toml"; fi
  cp "$env" "$RUN/config.env.part" && mv "$RUN/config.env.part" "$RUN/config.env"
}
freeze_from_checkpoint() {
  local f
  for f in "${FROZEN[@]:1}" heldout.toml "$RESUME_FROM"/{datagen,heldout}-draw*.toml; do
    f=${f##*/}; [ -f "$RESUME_FROM/$f" ] && cp "$RESUME_FROM/$f" "$RUN/"
  done
  cp "$RESUME_FROM/config.env" "$RUN/config.env.part" && mv "$RUN/config.env.part" "$RUN/config.env"
}
if [ ! -f "$RUN/config.env" ]; then
  if [ -n "$RESUME_FROM" ]; then freeze_from_checkpoint
  else freeze_from_schedule
  fi
fi
if [ -n "$SOLVERS" ] && ! cmp -s "$SOLVERS/run.env" "$RUN/config.env"; then
  die "$RUN was set up with other settings (config.env differs from $SOLVERS/run.env): use another --run folder."
fi
if [ -n "$RESUME_FROM" ] && ! cmp -s "$RESUME_FROM/config.env" "$RUN/config.env"; then
  die "$RUN was set up with other settings than the checkpoint $RESUME_FROM (config.env differs): use another --run folder."
fi
# shellcheck source=solvers/quick/run.env
. "$RUN/config.env"
HELDOUT_PRESET=${HELDOUT_PRESET:-}
LOSS_FLOOR_DB=${LOSS_FLOOR_DB:-}
LOSS_SCALE=${LOSS_SCALE:-1}
DRAW_PASSES=${DRAW_PASSES:-}
solver_field() {  # stage field: a field of the run's <stage>.prototxt (the one place max_iter lives)
  "$PY" - "$RUN/$1.prototxt" "$2" <<'PY'
import sys
from stem_restore.network import parse_solver
print(getattr(parse_solver(open(sys.argv[1]).read(), sys.argv[1]), sys.argv[2]))
PY
}
ADAM_MAX_ITER=$(solver_field adam max_iter)
SGD_MAX_ITER=$(solver_field sgd max_iter)
# A weighted training net (a "weight" top, stem_restore.network.is_weighted) reads shards with
# per-pair loss weights: LOSS_FLOOR_DB (and LOSS_SCALE) say how data/train_weighted is made.
NET_WEIGHTED=$("$PY" - "$RUN/train.prototxt" <<'PY'
import sys
from stem_restore.network import is_weighted, read_net
print(int(is_weighted(read_net(sys.argv[1]))))
PY
) || die "could not read $RUN/train.prototxt"
if [ "$NET_WEIGHTED" = 1 ] && [ -z "$LOSS_FLOOR_DB" ]; then
  die "$RUN/config.env: TRAIN_NET=$TRAIN_NET weights its loss per pair: set LOSS_FLOOR_DB (and LOSS_SCALE)"
elif [ "$NET_WEIGHTED" = 0 ] && [ -n "$LOSS_FLOOR_DB" ]; then
  die "$RUN/config.env: LOSS_FLOOR_DB is set but TRAIN_NET=$TRAIN_NET has no per-pair weights (use train_hdf5_weighted.prototxt)"
fi
TRAIN_DATA=train
# DRAW_PASSES (run.env, optional): the training pairs are drawn afresh after every DRAW_PASSES
# passes over TRAIN_COUNT of them (issue 13: "fresh data rather than many epochs").  Draw d is
# samples d x TRAIN_COUNT .. (d+1) x TRAIN_COUNT - 1 of TRAIN_SEED's endless stream (datagen
# --first), in data/train-draw<d>/; it is read for DRAW_ITERS iterations.  The draw a stage reads
# at its iteration N follows from N alone (position N in Adam, ADAM_MAX_ITER + N in SGD), so a
# resumed run, or one continued from a checkpoint on another machine, reads the very same pairs.
# Without it a run reads one draw (data/train) for ever.  A file RUN/datagen-draw<D>.toml
# changes the simulator's preset from draw D on (draw_preset below).
case "${PREFETCH_DRAWS:=auto}" in auto|0|1) ;; *) die "PREFETCH_DRAWS=$PREFETCH_DRAWS: expected auto, 1 or 0" ;; esac
DRAW_ITERS=
if [ -n "$DRAW_PASSES" ]; then
  [[ "$DRAW_PASSES" =~ ^[1-9][0-9]*$ ]] || die "$RUN/config.env: DRAW_PASSES=$DRAW_PASSES: expected a positive integer"
  (( TRAIN_COUNT * DRAW_PASSES % BATCH_SIZE == 0 )) ||
    die "$RUN/config.env: DRAW_PASSES x TRAIN_COUNT = $((TRAIN_COUNT * DRAW_PASSES)) pairs is not a whole number of batches of $BATCH_SIZE"
  DRAW_ITERS=$((TRAIN_COUNT * DRAW_PASSES / BATCH_SIZE))
fi
# Each draw's own preset (draw_preset) is checked now: its draw may come hours later.
for f in "$RUN"/{datagen,heldout}-draw*.toml; do
  [ -f "$f" ] || continue
  [[ "${f##*/}" =~ ^(datagen|heldout)-draw[0-9]+\.toml$ ]] ||
    die "$f: a draw's preset is named datagen-draw<number>.toml (heldout-draw<number>.toml for the held-out split)"
  [ -n "$DRAW_ITERS" ] || die "$f: a draw's preset needs DRAW_PASSES (config.env): without it the run has one draw"
  "$PY" -m datagen resolve "$f" > /dev/null || die "$f: not a preset (the line above says why)"
done

# INIT (run.env, optional): how Adam's first weights are drawn when --weights is not
# given.  msra (default) = the prototxt's fillers; identity = prototxt/identity_init.py,
# the same net started at output = max(input, 0), seeded by adam.prototxt's random_seed.
case "${INIT:=msra}" in
  msra) ;;
  identity)
    if [ -z "$INIT_WEIGHTS" ]; then
      INIT_WEIGHTS=$RUN/init.caffemodel
      seed=$(solver_field adam random_seed); [ "$seed" -ge 0 ] || seed=0  # unset: -1
      [ -s "$INIT_WEIGHTS" ] || "$PY" "$ROOT/prototxt/identity_init.py" --out "$INIT_WEIGHTS" \
        --seed "$seed" >/dev/null || die "could not write $INIT_WEIGHTS"
    fi ;;
  *) die "$RUN/config.env: INIT=$INIT: expected msra or identity" ;;
esac

CAFFE_ARGS=()
[ -n "$GPU" ] && CAFFE_ARGS+=("--gpu=$GPU")

# The checkpoint's pair goes into the run's snapshots/ under its own name (its
# .solverstate points at snapshots/<name>.caffemodel, relative to the run folder
# where caffe runs); its logs continue the run's loss curve.
if [ -n "$RESUME_FROM" ]; then
  for f in "${CKPT_STATE%.solverstate}.caffemodel" "$CKPT_STATE"; do
    cmp -s "$f" "$RUN/snapshots/$(basename "$f")" || cp "$f" "$RUN/snapshots/$(basename "$f")"
  done
  for f in "$RESUME_FROM"/logs/*.log; do
    [ -f "$f" ] && [ ! -f "$RUN/logs/$(basename "$f")" ] && cp "$f" "$RUN/logs/"
  done
  say "checkpoint $(basename "$CKPT_STATE") from $RESUME_FROM copied into $RUN/snapshots"
fi

# --- 1. data ----------------------------------------------------------------
make_data() {  # split count seed [first sample [preset file in RUN]]
  local split=$1 count=$2 seed=$3 first=${4:-0} preset=${5:-datagen.toml}
  say "data/$split: $count pairs of ${PATCH_SIZE}x${PATCH_SIZE}, preset $DATAGEN_PRESET ($preset), seed $seed${4:+, samples $first..$((first + count - 1))}"
  "$PY" -m datagen --preset "$RUN/$preset" --count "$count" --size "$PATCH_SIZE" \
    --out "$RUN/data/$split" --format hdf5 --seed "$seed" --first "$first" --workers "$WORKERS" \
    ${SHARD_SIZE:+--shard-size "$SHARD_SIZE"}
}
# The training pairs of data/SPLIT as Caffe reads them: TRAIN_DATA = SPLIT, or with
# LOSS_FLOOR_DB its copy with per-pair loss weights (a pure function of each pair).
use_train_data() {  # split
  TRAIN_DATA=$1
  [ -n "$LOSS_FLOOR_DB" ] || return 0
  say "data/${1}_weighted: data/$1 with per-pair loss weights (floor $LOSS_FLOOR_DB dB, scale $LOSS_SCALE)"
  "$PY" -m datagen weight "$RUN/data/$1" --out "$RUN/data/${1}_weighted" \
    --floor-db "$LOSS_FLOOR_DB" --scale "$LOSS_SCALE" >/dev/null || die "could not weight $RUN/data/$1"
  TRAIN_DATA=${1}_weighted
}
# The preset (a file in RUN) draw d is simulated from: datagen-draw<D>.toml with the largest
# D <= d, else datagen.toml.  A run's physics can so change from a draw on that no one has
# written yet (`python -m datagen resolve PRESET -o RUN/datagen-draw<D>.toml`), while every
# earlier draw and the test set (hence the held-out loss curve) regenerate as they were.
# With KIND heldout: the held-out split's preset at draw d (heldout-draw<D>.toml, else
# heldout.toml), which only the evaluation reads.
draw_preset() {  # d [KIND: datagen (default) | heldout]
  local kind=${2:-datagen} f n best=-1 name
  name=$kind.toml
  for f in "$RUN"/"$kind"-draw*.toml; do
    [ -f "$f" ] || continue
    n=${f##*/"$kind"-draw}; n=${n%.toml}
    if ((10#$n <= $1 && 10#$n > best)); then best=$((10#$n)); name=${f##*/}; fi
  done
  echo "$name"
}
# Draw d written (resumed if half done) and read; the other draws are deleted once it is
# complete (each is ~TRAIN_COUNT pairs of disk, and any can be regenerated from the seed).
# On a GPU (--gpu) the CPU is idle while Caffe trains: draw d+1 is written in the background
# meanwhile (PREFETCH_PID), and waited for before it is used or the run stops.
PREFETCH_PID=
trap stop_prefetch EXIT  # an error, or Ctrl-C, must not leave a datagen writing on its own
use_draw() {  # d
  local split=train-draw$1 old
  wait_prefetch
  make_data "$split" "$TRAIN_COUNT" "$TRAIN_SEED" $(($1 * TRAIN_COUNT)) "$(draw_preset "$1")" ||
    die "could not write draw $1 (data/$split)"
  use_train_data "$split"
  for old in "$RUN"/data/train-draw*; do
    case "${old##*/}" in "$split"|"${split}_weighted"|"train-draw$(($1 + 1))"|"train-draw$(($1 + 1))_weighted") ;;
      *) say "data/${old##*/}: an earlier draw, deleted"; rm -rf "$old" ;; esac
  done
  # The next draw is read only if the run goes on past this one (Adam + SGD positions).
  [ $((($1 + 1) * DRAW_ITERS)) -lt $((ADAM_MAX_ITER + SGD_MAX_ITER)) ] || return 0
  if [ "$PREFETCH_DRAWS" = 1 ] || { [ "$PREFETCH_DRAWS" = auto ] && [ -n "$GPU" ]; }; then
    say "data/train-draw$(($1 + 1)): written in the background while Caffe trains (log: logs/prefetch.out)"
    set -m  # its own process group, which stop_prefetch can interrupt whole
    ( make_data "train-draw$(($1 + 1))" "$TRAIN_COUNT" "$TRAIN_SEED" $((($1 + 1) * TRAIN_COUNT)) \
        "$(draw_preset $(($1 + 1)))" &&
      { [ -z "$LOSS_FLOOR_DB" ] || use_train_data "train-draw$(($1 + 1))"; } ) >> "$RUN/logs/prefetch.out" 2>&1 &
    PREFETCH_PID=$!
    set +m
  fi
}
wait_prefetch() {  # the background draw finished (its failure is not fatal: use_draw redoes it)
  [ -n "$PREFETCH_PID" ] || return 0
  wait "$PREFETCH_PID" || say "the background draw stopped early (logs/prefetch.out); written in the foreground"
  PREFETCH_PID=
}
# A script started with & (no job control) runs with SIGINT ignored, and so do its children:
# SIGTERM ends the whole group (shards are written atomically; datagen resumes at the next run).
stop_prefetch() {  # --for, or the script ends early: end the background draw
  [ -n "$PREFETCH_PID" ] || return 0
  kill -TERM -- "-$PREFETCH_PID" 2>/dev/null || true
  wait "$PREFETCH_PID" 2>/dev/null || true
  PREFETCH_PID=
}

# --- 2./3. the two solver stages ---------------------------------------------
# A snapshot is whole when it can be resumed (stem_restore/snapshots.py): a run
# killed while Caffe was writing one resumes from the one before.
snapshot_ok() {  # path
  "$PY" -m stem_restore.snapshots whole "$1" 2>/dev/null
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

# Caffe's HDF5Data layer does not record where it was in the shard list: a stage
# resumed at iteration N reads the list rotated to the shard where row N x batch
# falls (stem_restore/snapshots.py; warned when that is not a shard boundary).
write_train_list() {  # iteration
  "$PY" -m stem_restore.snapshots order "$RUN/data/$TRAIN_DATA/list.txt" "$BATCH_SIZE" "$1" \
    > "$RUN/train_list.txt.part" || die "could not list the training shards of $RUN/data/$TRAIN_DATA"
  mv "$RUN/train_list.txt.part" "$RUN/train_list.txt"
}

# With DRAW_PASSES a stage runs in chunks that end where a draw does: Caffe trains to the
# chunk's end (<stage>.chunk.prototxt: the stage's solver with that max_iter; Caffe snapshots
# there), the next draw is written, and the stage resumes from that snapshot; the last chunk
# runs <stage>.prototxt itself.
train_stage() {  # name max_iter [--weights=...]
  local name=$1 max_iter=$2 init=${3:-} state offset=0 it end solver draw
  [ "$name" = adam ] || offset=$ADAM_MAX_ITER  # SGD's iteration N is the run's position ADAM_MAX_ITER + N
  # Finished = the last snapshot is whole (Caffe writes the .caffemodel first, then the .solverstate).
  if [ -f "$RUN/snapshots/${name}_iter_${max_iter}.solverstate" ] &&
     snapshot_ok "$RUN/snapshots/${name}_iter_${max_iter}.solverstate"; then
    say "$name: finished earlier (${name}_iter_${max_iter}.caffemodel), not rerun"; return
  fi
  while :; do
    state=$(latest_state "$name")
    local args=("${CAFFE_ARGS[@]}")
    it=0
    if [ -n "$state" ]; then
      it=${state##*_iter_}; it=${it%.solverstate}
      [ "$it" -lt "$max_iter" ] || return 0
      if [ -n "$STOP_AFTER" ] && [ "$SECONDS" -ge "$DEADLINE" ]; then stop_in_time "$name" "$it"; return 0; fi
      say "$name: resuming from $(basename "$state")"
      args+=("--snapshot=snapshots/$(basename "$state")")
    elif [ -n "$init" ]; then
      args+=("$init")
    fi
    solver=$name.prototxt; draw=
    if [ -n "$DRAW_ITERS" ]; then
      draw=$(((offset + it) / DRAW_ITERS))
      use_draw "$draw"
      end=$(((draw + 1) * DRAW_ITERS - offset))
      if [ "$end" -lt "$max_iter" ]; then  # the last chunk runs the stage's own solver
        solver=$name.chunk.prototxt
        sed -E "s/^max_iter:[[:space:]]*[0-9]+/max_iter: $end/" "$RUN/$name.prototxt" > "$RUN/$solver.part"
        mv "$RUN/$solver.part" "$RUN/$solver"
        [ "$(solver_field "${solver%.prototxt}" max_iter)" = "$end" ] || die "could not write $RUN/$solver"
      else
        end=$max_iter
      fi
      write_train_list $((offset + it))
    else
      write_train_list "$it"
    fi
    args=("--solver=$solver" "${args[@]}")
    say "$name: caffe train ${args[*]}  (log: logs/$name.log)${draw:+; draw $draw (data/$TRAIN_DATA) to iteration $end}"
    echo "### run_training.sh $(date -u +%FT%TZ): caffe train ${args[*]}${draw:+  (draw $draw: data/$TRAIN_DATA, to iteration $end)}" >> "$RUN/logs/$name.log"
    # The log is part of the run (loss curve, checklist): INFO level, whatever the caller set.
    local limit=() rc=0
    if [ -n "$STOP_AFTER" ]; then
      # SIGINT at the deadline (Caffe stops and snapshots), SIGKILL if it has not stopped 2 min later.
      limit=(timeout --foreground -k 120 -s INT $((DEADLINE - SECONDS)))
      [ "${limit[6]}" -gt 0 ] || { stop_in_time "$name" "$it"; return 0; }
    fi
    (cd "$RUN" && GLOG_minloglevel=0 "${limit[@]}" "$CAFFE" train "${args[@]}" 2>> "logs/$name.log") || rc=$?
    if [ -n "$STOP_AFTER" ] && { [ "$rc" = 124 ] || { [ "$rc" = 137 ] && [ "$SECONDS" -ge "$DEADLINE" ]; }; }; then
      stop_in_time "$name" "$it"; return 0
    fi
    [ "$rc" = 0 ] || die "$name stage failed; see $RUN/logs/$name.log"
    [ -n "$DRAW_ITERS" ] || return 0
  done
}

# --for: Caffe was interrupted (SIGINT: it stops and snapshots at the iteration it was in).
# That snapshot is kept only if the stage resumes exactly from it (its next row starts a
# shard); else it goes and the last periodic snapshot (a whole number of shards) stands.
stop_in_time() {  # stage, the iteration this chunk started at (its snapshots are newer)
  local state it offset=0 rc=0
  TIME_UP=1
  stop_prefetch
  # The row the data list is rotated by: the run's position with draws, the stage's iteration without.
  [ "$1" = adam ] || [ -z "$DRAW_ITERS" ] || offset=$ADAM_MAX_ITER
  state=$(latest_state "$1")
  if [ -n "$state" ]; then
    it=${state##*_iter_}; it=${it%.solverstate}
    if [ "$it" -gt "$2" ]; then
      "$PY" -m stem_restore.snapshots exact "$RUN/data/$TRAIN_DATA/list.txt" "$BATCH_SIZE" $((offset + it)) || rc=$?
      [ "$rc" -le 1 ] || die "could not read the shard list $RUN/data/$TRAIN_DATA/list.txt"
      if [ "$rc" = 1 ]; then
        say "$1: the stop snapshot at iteration $it is inside a shard (not exactly resumable): removed"
        rm -f "$state" "${state%.solverstate}.caffemodel"
        state=$(latest_state "$1")
      fi
    fi
  fi
  say "$1: stopped after --for $STOP_AFTER s${state:+; newest snapshot $(basename "$state")}"
}

# --save-checkpoint: the run's newest whole snapshot pair, its logs and loss curve
# into one folder (replaced whole: the old pair goes), for a later --resume-from.
if [ -n "$SAVE_CHECKPOINT" ]; then
  state=$(latest_state sgd); [ -n "$state" ] || state=$(latest_state adam)
  [ -n "$state" ] || die "$RUN has no whole snapshot to save"
  dest=$(mkdir -p "$(dirname "$SAVE_CHECKPOINT")" && cd "$(dirname "$SAVE_CHECKPOINT")" && pwd)/$(basename "$SAVE_CHECKPOINT")
  rm -rf "$dest.part"; mkdir -p "$dest.part/logs"
  cp "$state" "${state%.solverstate}.caffemodel" "$dest.part/"
  cp "$RUN"/logs/*.log "$dest.part/logs/"
  for f in "${FROZEN[@]}" heldout.toml "$RUN"/{datagen,heldout}-draw*.toml; do
    f=${f##*/}; [ ! -f "$RUN/$f" ] || cp "$RUN/$f" "$dest.part/"
  done
  (cd "$ROOT" && "$PY" -m evaluate.losscurve "$RUN/logs" -o "$dest.part/loss.png" >/dev/null)
  rm -rf "$dest.old"; [ ! -d "$dest" ] || mv "$dest" "$dest.old"
  mv "$dest.part" "$dest"; rm -rf "$dest.old"
  say "checkpoint: $(basename "$state") (+ .caffemodel, the run's set-up, logs, loss.png) in $dest"
  exit 0
fi

# --weights adam_iter_N.solverstate: the pair becomes this run's first Adam snapshot
# (named relative to the run folder, like Caffe's own), so the stage resumes from it.
if [[ "$INIT_WEIGHTS" == *.solverstate ]]; then
  [[ "$(basename "$INIT_WEIGHTS")" == adam_iter_*.solverstate ]] ||
    die "--weights $INIT_WEIGHTS: a .solverstate continues the Adam stage: expected adam_iter_N.solverstate"
  if [ -z "$(latest_state adam)" ] && [ -z "$(latest_state sgd)" ]; then
    "$PY" -m stem_restore.snapshots adopt "$INIT_WEIGHTS" "$RUN" ||
      die "--weights $INIT_WEIGHTS: could not copy the pair into $RUN/snapshots"
    say "adam: continues $(basename "$INIT_WEIGHTS") (another run's Adam stage) with this run's data"
  fi
  INIT_WEIGHTS=
fi

cd "$ROOT"
if [ -z "$DRAW_ITERS" ]; then  # one draw for the whole run (with DRAW_PASSES: train_stage's use_draw)
  make_data train "$TRAIN_COUNT" "$TRAIN_SEED"
  use_train_data train
fi
make_data test "$TEST_COUNT" "$TEST_SEED"

# Adam is done once SGD has a snapshot (a checkpoint of the SGD stage brings no Adam snapshots).
if [ -n "$(latest_state sgd)" ]; then
  say "adam: finished earlier (the SGD stage has snapshots), not rerun"
else
  train_stage adam "$ADAM_MAX_ITER" ${INIT_WEIGHTS:+"--weights=$INIT_WEIGHTS"}
fi
# SGD starts from Adam's final weights; a solverstate cannot cross solver types.
[ "$TIME_UP" = 1 ] || train_stage sgd "$SGD_MAX_ITER" "--weights=snapshots/adam_iter_${ADAM_MAX_ITER}.caffemodel"
wait_prefetch
if [ "$TIME_UP" = 1 ]; then  # --for: the loss curve so far, then stop (the run resumes with the same command)
  "$PY" -m evaluate.losscurve "$RUN/logs" -o "$RUN/loss.png" || say "no loss curve (see above); the snapshots stand"
  say "done (--for $STOP_AFTER): $RUN/snapshots, $RUN/loss.png"; exit 0
fi
if ! [ "$RUN/final.caffemodel" -nt "$RUN/snapshots/sgd_iter_${SGD_MAX_ITER}.caffemodel" ]; then
  cp "$RUN/snapshots/sgd_iter_${SGD_MAX_ITER}.caffemodel" "$RUN/final.caffemodel.part"
  mv "$RUN/final.caffemodel.part" "$RUN/final.caffemodel"
fi

# --- 4. loss curve, evaluation, restored examples ----------------------------
# (each step is skipped when its output is newer than final.caffemodel)
fresh() { [ "$1" -nt "$RUN/final.caffemodel" ]; }
fresh "$RUN/loss.png" || "$PY" -m evaluate.losscurve "$RUN/logs" -o "$RUN/loss.png"
if [ "$TRAIN_ONLY" = 1 ]; then say "done (--train-only): $RUN/final.caffemodel, $RUN/loss.png"; exit 0; fi
# The model is evaluated on the physics it was trained on last: the presets of the run's
# last draw (draw_preset; datagen.toml / heldout.toml without draws or draw presets).
LAST_DRAW=0
[ -z "$DRAW_ITERS" ] || LAST_DRAW=$(((ADAM_MAX_ITER + SGD_MAX_ITER - 1) / DRAW_ITERS))
EVAL_PRESET=$(draw_preset "$LAST_DRAW")
EVAL_HELDOUT=$(draw_preset "$LAST_DRAW" heldout)
fresh "$RUN/eval/results.md" || { say "evaluation: $EVAL_PRESET${HELDOUT_PRESET:+, held out $EVAL_HELDOUT}" &&
  "$PY" -m evaluate --model "$RUN/deploy.prototxt" --weights "$RUN/final.caffemodel" \
  --preset "$RUN/$EVAL_PRESET" ${HELDOUT_PRESET:+--heldout-preset "$RUN/$EVAL_HELDOUT"} \
  --size "$EVAL_SIZE" --count "$EVAL_COUNT" --seed "$EVAL_SEED" \
  --out "$RUN/eval" --train-log-dir "$RUN/logs" ${GPU:+--gpu "${GPU%%,*}"} ${EVAL_ARGS:-}; }
if [ -d "$ROOT/examples" ] && [ "${RESTORE_EXAMPLES:-1}" = 1 ] && ! fresh "$RUN/restored"; then
  "$PY" "$ROOT/restore.py" "$ROOT/examples" -o "$RUN/restored" --model "$RUN/deploy.prototxt" \
    --weights "$RUN/final.caffemodel" --figure --overwrite ${GPU:+--gpu "${GPU%%,*}"}
fi
say "done: $RUN/final.caffemodel, $RUN/loss.png, $RUN/eval/results.md"
exit 0
}
