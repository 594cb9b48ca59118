#!/usr/bin/env bash
# Copy a finished training run into models/, the model restore.py uses by default:
#   bash scripts/ship_model.sh runs/short
# models/ then holds the deploy net, the weights and what reproduces them, all read
# from the run folder (its frozen set-up, never the current solvers/ or presets):
# config.env, both solvers and the training net as used, the datagen preset(s) the
# run resolved at its start, Caffe's training logs, the loss curve and the evaluation
# (results.md/csv, checklist, figure).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUN=${1:?usage: ship_model.sh RUN_FOLDER}
OUT="$ROOT/models"
for f in final.caffemodel deploy.prototxt config.env adam.prototxt sgd.prototxt train.prototxt datagen.toml \
         logs/adam.log logs/sgd.log loss.png eval/results.md eval/results.csv eval/checklist.md eval/figure.png; do
  [ -f "$RUN/$f" ] || { echo "ship_model: $RUN/$f missing: is the run finished?" >&2; exit 1; }
done
mkdir -p "$OUT/training" "$OUT/evaluation"
cp "$RUN/final.caffemodel" "$OUT/stem_restore.caffemodel.part" && mv "$OUT/stem_restore.caffemodel.part" "$OUT/stem_restore.caffemodel"
cp "$RUN/deploy.prototxt" "$OUT/deploy.prototxt"
cp "$RUN/config.env" "$RUN/adam.prototxt" "$RUN/sgd.prototxt" "$RUN/train.prototxt" "$RUN/loss.png" "$OUT/training/"
rm -f "$OUT/training/heldout.toml"
cp "$RUN/datagen.toml" "$OUT/training/"
[ ! -f "$RUN/heldout.toml" ] || cp "$RUN/heldout.toml" "$OUT/training/"
# Caffe's logs, with this machine's absolute paths made relative to the run folder.
for log in adam sgd; do sed "s|$(cd "$RUN" && pwd)/||g; s|$ROOT/||g" "$RUN/logs/$log.log" > "$OUT/training/$log.log"; done
cp "$RUN/eval/results.csv" "$RUN/eval/figure.png" "$OUT/evaluation/"
for md in results checklist; do sed "s|$ROOT/||g" "$RUN/eval/$md.md" > "$OUT/evaluation/$md.md"; done
sha256sum "$OUT/stem_restore.caffemodel" | sed "s|$OUT/||" > "$OUT/SHA256SUMS"
echo "shipped $RUN -> $OUT"
