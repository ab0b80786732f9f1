#!/usr/bin/env bash
# The CAM -> pseudo label -> segmentation chain of BENCHMARKS.md, on a synthetic VOC-layout data set.
#
#   bench/chain.sh DATA OUT [N]
#
# DATA: a folder written by `infercam make-synthetic` (BENCHMARKS.md used --n-train 10000 --n-val 500 --seed 0);
# OUT: a work folder; N: training images used (default 400, the first N of train.txt).
# SEED: seed of the segmentation runs (default 0). Every step resumes where an interrupted run stopped
# (a finished training run is reused). Prints each mIoU.
set -euo pipefail
DATA=$(cd "$1" && pwd); OUT=$2; N=${3:-400}
IC=${INFERCAM:-"$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/infercam"}
CLS=$("$(dirname "$IC")/python" -c "from infercam.models.demo import DEMO_WEIGHTS; print(DEMO_WEIGHTS)")
mkdir -p "$OUT"; cd "$OUT"
head -n "$N" "$DATA/ImageSets/Segmentation/train.txt" > train.txt
VAL="$DATA/ImageSets/Segmentation/val.txt"
T="--voc-root $DATA --list train.txt --no-progress"
score() { echo "$1: $("$IC" eval --pred "$2" --voc-root "$DATA" --list "${3:-train.txt}" | grep 'mIoU:')"; }
best_t() { "$IC" eval --pred "$1" --voc-root "$DATA" --list train.txt | sed -n 's/^best threshold: //p'; }

"$IC" cam   $T --network demo --out-cam cam_base
"$IC" infer $T --network demo --out-cam cam_ic
for src in base ic; do
  t=$(best_t "cam_$src"); score "CAM $src (best threshold $t)" "cam_$src"
  for method in threshold crf; do
    "$IC" pseudo $T --cam "cam_$src" --method "$method" --bg-threshold "$t" --out "pl_${method}_$src"
    score "$method $src" "pl_${method}_$src"
  done
  "$IC" pseudo $T --cam "cam_$src" --method rw --alpha 16 --out "pl_rw_$src"   # the bundled demo AffinityNet
  score "rw (alpha 16) $src" "pl_rw_$src"
done
"$IC" pseudo $T --cam cam_ic --method crf --affinity-labels --out afflab_ic
"$IC" train-aff $T --aff-labels afflab_ic --network demo --crop-size 176 --out aff.pt
for src in base ic; do
  "$IC" pseudo $T --cam "cam_$src" --method rw --aff-weights aff.pt --alpha 16 --out "pl_rw_own_$src"
  score "rw (alpha 16, this run's AffinityNet) $src" "pl_rw_own_$src"
done
for labels in pl_rw_ic pl_rw_base pl_crf_ic pl_crf_base; do
  "$IC" train-seg $T --pseudo "$labels" --network small-resnet-seg --init-weights "$CLS" --lr 0.05 --epochs 40 \
      --crop-size 176 --seed "${SEED:-0}" --out "seg_$labels.pt" \
      --out-pred "seg_$labels" --pred-list "$VAL"
  score "segmentation trained on $labels (val)" "seg_$labels" "$VAL"
done
