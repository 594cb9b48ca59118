#!/usr/bin/env bash
# Copy a training run into models/, the model restore.py uses by default:
#   bash scripts/ship_model.sh runs/short
#   bash scripts/ship_model.sh runs/long --snapshot runs/long/snapshots/adam_iter_3072.caffemodel \
#        --eval runs/long/eval_iter_3072
# Without --snapshot the run must be finished: its final.caffemodel and eval/ are shipped.
# --snapshot ships one snapshot of a run still in progress (issue 13: "ship the best model
# whenever it beats the shipped one"), with the evaluation of that snapshot (--eval, default
# RUN/eval), e.g. `python -m evaluate ... --compare shipped=models/stem_restore.caffemodel`.
# models/ then holds the deploy net, the weights and what reproduces them, all read
# from the run folder (its frozen set-up, never the current solvers/ or presets):
# config.env, both solvers and the training net as used, the datagen preset(s) the
# run resolved at its start, Caffe's training logs (those that exist), the loss curve and
# the evaluation (results.md/csv, checklist, figure). Every file is checked before any is copied.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
usage() { sed -n '2,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
die() { echo "ship_model: $*" >&2; exit 1; }
RUN=""; SNAPSHOT=""; EVAL=""
while [ $# -gt 0 ]; do
  case "$1" in
    --snapshot) SNAPSHOT=${2:?--snapshot needs a .caffemodel}; shift ;;
    --eval) EVAL=${2:?--eval needs an evaluation folder}; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) die "unknown option '$1' (see --help)" ;;
    *) [ -z "$RUN" ] || die "one run folder only (got '$RUN' and '$1')"; RUN=$1 ;;
  esac
  shift
done
[ -n "$RUN" ] || { usage >&2; exit 1; }
[ -d "$RUN" ] || die "$RUN: no such run folder"
OUT=${SHIP_TO:-$ROOT/models}  # SHIP_TO: another destination (the tests)
EVAL=${EVAL:-$RUN/eval}
WEIGHTS=${SNAPSHOT:-$RUN/final.caffemodel}
if [ -z "$SNAPSHOT" ]; then
  [ -f "$WEIGHTS" ] || die "$WEIGHTS missing: is the run finished? (or ship one of its snapshots with --snapshot)"
  LOGS="adam sgd"
else
  [ -f "$WEIGHTS" ] || die "$WEIGHTS: no such snapshot"
  LOGS=""; for log in adam sgd; do [ ! -f "$RUN/logs/$log.log" ] || LOGS="$LOGS $log"; done
  [ -n "$LOGS" ] || die "$RUN/logs: no Caffe training log (adam.log or sgd.log)"
fi
for f in "$RUN"/{deploy.prototxt,config.env,adam.prototxt,sgd.prototxt,train.prototxt,datagen.toml,loss.png} \
         "$EVAL"/{results.md,results.csv,checklist.md,figure.png}; do
  [ -f "$f" ] || die "$f missing"
done
for log in $LOGS; do [ -f "$RUN/logs/$log.log" ] || die "$RUN/logs/$log.log missing: is the run finished?"; done
if [ -n "$SNAPSHOT" ]; then  # its stage's log must hold the line that wrote it (the log is cut there)
  STATE=$(basename "$SNAPSHOT" .caffemodel).solverstate
  STAGE_LOG=$RUN/logs/${STATE%%_iter_*}.log
  # An A/B arm spliced into the run's lineage (benchmarks/train_ab.py --resume, its log appended
  # under a '### session' marker, its pair copied in as the run's own) logs it as snap_iter_N.
  ARM_STATE=snap_${STATE#*_}
  grep -qE "Snapshotting solver state.*[ /]($STATE|$ARM_STATE)\$" "$STAGE_LOG" 2>/dev/null \
    || die "$STAGE_LOG does not log writing $STATE: is $(basename "$SNAPSHOT") a snapshot of this run?"
fi
# The evaluation must be of the weights shipped (its header names them).
grep -q "$(basename "$WEIGHTS")" "$EVAL/results.md" \
  || die "$EVAL/results.md does not name $(basename "$WEIGHTS"): evaluate these weights first"

mkdir -p "$OUT/training" "$OUT/evaluation"
cp "$WEIGHTS" "$OUT/stem_restore.caffemodel.part" && mv "$OUT/stem_restore.caffemodel.part" "$OUT/stem_restore.caffemodel"
cp "$RUN/deploy.prototxt" "$OUT/deploy.prototxt"
cp "$RUN/config.env" "$RUN/adam.prototxt" "$RUN/sgd.prototxt" "$RUN/train.prototxt" "$RUN/loss.png" "$OUT/training/"
rm -f "$OUT/training/heldout.toml" "$OUT/training/adam.log" "$OUT/training/sgd.log"
cp "$RUN/datagen.toml" "$OUT/training/"
[ ! -f "$RUN/heldout.toml" ] || cp "$RUN/heldout.toml" "$OUT/training/"
# Caffe's logs, with this machine's absolute paths made relative to the run folder; for a
# snapshot, cut after the line that wrote it (a run in progress logs on), and the loss curve
# redrawn from the cut logs.
for log in $LOGS; do
  sed "s|$(cd "$RUN" && pwd)/||g; s|$ROOT/||g" "$RUN/logs/$log.log" > "$OUT/training/$log.log"
done
if [ -n "$SNAPSHOT" ]; then
  LOG=$OUT/training/$(basename "$STAGE_LOG")
  awk -v s="$STATE" -v a="$ARM_STATE" 'NR == FNR { if (index($0, "Snapshotting solver state") &&
                                                        (index($0, s) || index($0, a))) last = FNR; next }
                     FNR <= last' "$LOG" "$LOG" > "$LOG.part"
  mv "$LOG.part" "$LOG"
  PY=${PYTHON:-$ROOT/.venv/bin/python}
  (cd "$ROOT" && "$PY" -m evaluate.losscurve "$OUT/training" -o "$OUT/training/loss.png" >/dev/null)
fi
# The table of restore.py --self-ensemble (evaluate --self-ensemble) describes the weights shipped
# before: removed; evaluate the new ones with that option to add it back.
if [ -d "$OUT/evaluation/self_ensemble" ]; then
  rm -rf -- "$OUT/evaluation/self_ensemble"
  echo "removed $OUT/evaluation/self_ensemble (of the previous weights): rerun evaluate --self-ensemble"
fi
cp "$EVAL/results.csv" "$EVAL/figure.png" "$OUT/evaluation/"
for md in results checklist; do sed "s|$ROOT/||g" "$EVAL/$md.md" > "$OUT/evaluation/$md.md"; done
(cd "$OUT" && sha256sum stem_restore.caffemodel > SHA256SUMS)
echo "shipped $WEIGHTS -> $OUT"
