#!/usr/bin/env bash
# Train all the embedded models on one GPU (the `gpu` profile of art_asr_ext.benchmark.training.embedded: larger
# batches, fewer steps, sized for about 9 minutes of wall time on one H200), from the Opus-packed corpus carried
# along, publishing them with their run records into $OUT/models.
#
# Prepare on the CPU machine (the packed corpus must stay under ~40 MB to travel in the 64 MiB working tree):
#   echo /packed/ >> .git/info/exclude
#   python -m art_asr_ext.benchmark.training.pack --corpus ../shared/data/synth --out packed --max-train-utterances 3500
# (re-packs the first 3,500 training sentences at 16 kbit/s, about 33 MB, and the dev split).
# Run there, from the repository root, with the packed corpus carried (the device tool's `carry: ["packed"]`), in an
# environment that has this package's dependencies:
#   bash benchmarks/gpu_train_embedded.sh packed "$OUT"
# Back here: copy $OUT/models/* into art_asr_ext/benchmark/models/ and regenerate the cards with
#   python benchmarks/model_cards.py --synthetic-test ../shared/data/synth/test-synth
set -euo pipefail
corpus=${1:?usage: gpu_train_embedded.sh PACKED_CORPUS OUT_DIR}
out=${2:?usage: gpu_train_embedded.sh PACKED_CORPUS OUT_DIR}
export PYTHONUNBUFFERED=1
# Each piece leaves its best weights in $OUT/models (and a stage is picked up only from there).
python -m art_asr_ext.benchmark.training.embedded --corpus "$corpus" --work "$out/train" --device gpu \
    --audio-extension .opus --dev-audio-extension .opus --models-dir "$out/models" \
    --checkpoints-dir "$out/models" --hours 0.15 --piece-minutes 9 \
    2>&1 | tee "$out/train.log"
