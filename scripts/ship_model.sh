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
# the evaluation (results.md/csv, checklist, figure). Every file is checked before any is copied,
# and models/ changes only once all of it is written (a staging folder beside it, then moves).
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
OUT=${OUT%/}
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
# The evaluation must be of the weights shipped: its header names them ("- CNN: MODEL + WEIGHTS");
# where that file is here, it must hold the same bytes (another run's final.caffemodel does not).
NAMED=$(sed -n 's/^- \{0,1\}CNN: .* + \(.*\.caffemodel\)$/\1/p; s/^CNN: \(.*\.caffemodel\)$/\1/p' "$EVAL/results.md" | head -n 1)
grep -q "$(basename "$WEIGHTS")" <<< "$NAMED" \
  || die "$EVAL/results.md does not name $(basename "$WEIGHTS"): evaluate these weights first"
for f in "$NAMED" "$ROOT/$NAMED"; do
  if [ -f "$f" ]; then
    cmp -s "$f" "$WEIGHTS" || die "$EVAL/results.md evaluated $NAMED, not the bytes of $WEIGHTS: evaluate these weights first"
    break
  fi
done

# Everything is written into a staging folder beside the destination first, and moved into place
# only when all of it is there: a failure on the way leaves the shipped model as it was.
mkdir -p "$(dirname "$OUT")"
STAGE=$(mktemp -d "$OUT.ship.XXXXXX")
trap 'rm -rf -- "$STAGE"' EXIT
mkdir -p "$STAGE/training" "$STAGE/evaluation"
cp "$WEIGHTS" "$STAGE/stem_restore.caffemodel"
cp "$RUN/deploy.prototxt" "$STAGE/deploy.prototxt"
cp "$RUN/config.env" "$RUN/adam.prototxt" "$RUN/sgd.prototxt" "$RUN/train.prototxt" "$RUN/loss.png" \
   "$RUN/datagen.toml" "$STAGE/training/"
for f in "$RUN"/heldout.toml "$RUN"/{datagen,heldout}-draw*.toml; do  # the draws' presets too
  [ ! -f "$f" ] || cp "$f" "$STAGE/training/"
done
# Caffe's logs, with this machine's absolute paths made relative to the run folder; for a
# snapshot, cut after the line that wrote it (a run in progress logs on), and the loss curve
# redrawn from the cut logs.
for log in $LOGS; do
  sed "s|$(cd "$RUN" && pwd)/||g; s|$ROOT/||g" "$RUN/logs/$log.log" > "$STAGE/training/$log.log"
done
if [ -n "$SNAPSHOT" ]; then
  LOG=$STAGE/training/$(basename "$STAGE_LOG")
  awk -v s="$STATE" -v a="$ARM_STATE" 'NR == FNR { if (index($0, "Snapshotting solver state") &&
                                                        (index($0, s) || index($0, a))) last = FNR; next }
                     FNR <= last' "$LOG" "$LOG" > "$LOG.part"
  mv "$LOG.part" "$LOG"
  PY=${PYTHON:-$ROOT/.venv/bin/python}
  (cd "$ROOT" && "$PY" -m evaluate.losscurve "$STAGE/training" -o "$STAGE/training/loss.png" >/dev/null)
fi
cp "$EVAL/results.csv" "$EVAL/figure.png" "$STAGE/evaluation/"
for md in results checklist; do sed "s|$ROOT/||g" "$EVAL/$md.md" > "$STAGE/evaluation/$md.md"; done
(cd "$STAGE" && sha256sum stem_restore.caffemodel > SHA256SUMS)

# Into place.  Tables of other pipelines of the previous weights (evaluate --self-ensemble,
# --align-rows: evaluation/<name>/) describe those weights: they go with the old evaluation/.
mkdir -p "$OUT"
for sub in "$OUT"/evaluation/*/; do
  [ -d "$sub" ] && echo "removed $sub (of the previous weights): rerun evaluate with its options to add it back"
done
for d in training evaluation; do
  [ ! -e "$OUT/$d" ] || mv "$OUT/$d" "$STAGE/previous-$d"
  mv "$STAGE/$d" "$OUT/$d"
done
for f in deploy.prototxt stem_restore.caffemodel SHA256SUMS; do mv "$STAGE/$f" "$OUT/$f"; done
echo "shipped $WEIGHTS -> $OUT"
