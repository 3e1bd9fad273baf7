#!/usr/bin/env bash
# The paper's ablations in miniature on the puppet world (docs/results/ablations.md): every command behind its numbers.
#
#   bash tools/run_tiny_ablations.sh            # all stages; each skips what its outputs show is done
#   STAGES="train" SEEDS="3" bash tools/run_tiny_ablations.sh
#
# Needs the recipe's inputs of dynamictrl/assets/models/dynamictrl-tiny/README.md: runs/tiny-base (tiny VAE + frozen T5),
# data/puppet/train/latents9 (train latents, with masked references) and data/puppet/test9 (32 test clips); it checks
# them first and names what is missing with the command that makes it. A failed stage prints its log's last lines.
# On 2 CPU cores one 1,500-step run takes ~9 min; the whole script ~2 h.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
ACCELERATE=${ACCELERATE:-.venv/bin/accelerate}
STEPS=${STEPS:-1500}
SEEDS=${SEEDS:-"1 2"}
STAGES=${STAGES:-"train data background long"}
R=runs/ablate
O=outputs/ablate
VARIANTS="padaln uvt cross_attn none notext"
RECIPE="dynamictrl/assets/models/dynamictrl-tiny/README.md"

has_stage() { [[ " $STAGES " == *" $1 "* ]]; }

# ---------------------------------------------------------------- inputs first: say what is missing and what makes it
for stage in $STAGES; do
  case $stage in train | data | background | long) ;; *)
    echo "error: unknown stage '$stage' in STAGES (choose from: train data background long)" >&2; exit 2 ;;
  esac
done
missing=0
declare -A REPORTED=()
need() {  # path, what it is, the command that makes it
  if [ ! -e "$1" ] && [ -z "${REPORTED[$1]:-}" ]; then
    echo "error: missing $1 ($2); make it with: $3" >&2
    REPORTED[$1]=1 missing=1
  fi
}
need_tool() {  # executable, what it is
  if ! command -v "$1" > /dev/null; then
    echo "error: missing $1 ($2); make it with: python -m venv .venv && .venv/bin/pip install -e '.[train,eval]'" >&2
    missing=1
  fi
}
runs_todo() {  # the training runs (name-sSEED) of the train stage that have no final transformer yet
  local seed name
  for seed in $SEEDS; do for name in $VARIANTS; do echo "$name-s$seed"; done; done | cat - <(echo masked-s1; echo masked_all-s1) |
    while read -r run; do [ -f $R/$run/final/transformer/config.json ] || echo "$run"; done
}
TEST9="python tools/make_synthetic.py --out data/puppet/test9 --num 32 --size 64 --frames 9 --split test --style demo --seed 100000"
need_tool "$PY" "the Python every stage runs; or set PY"
if has_stage train; then
  need data/puppet/test9/prompts.txt "the 32 test clips every run is scored on" "$TEST9"
  need runs/tiny-base/model_index.json "tiny VAE + frozen T5 that every run is exported with" \
    "python tools/build_tiny_model.py base --vae runs/vae-tiny-x4/checkpoints/step-003000/vae --out runs/tiny-base --layers 6 --heads 4 --head-dim 32 --patch-size 2 --text-encoder random (the VAE first: recipe in $RECIPE)"
  if [ -n "$(runs_todo)" ]; then
    need_tool "$ACCELERATE" "accelerate launches the training runs; or set ACCELERATE"
    need data/puppet/train/latents9 "the latent cache the runs train on" \
      "python tools/prepare_dataset.py --config configs/train/tiny_puppet.yaml --out data/puppet/train/latents9 --clips-per-video 2 --batch-size 16 (recipe in $RECIPE)"
  fi
fi
if has_stage background || has_stage long; then
  if ! has_stage train; then
    for run in masked-s1 padaln-s1 masked_all-s1; do
      has_stage background || [ $run = masked-s1 ] || continue
      need $R/export-$run/model_index.json "the exported $run model" "STAGES=train SEEDS=1 bash tools/run_tiny_ablations.sh"
    done
  fi
  if ! has_stage data; then
    has_stage background && need data/puppet/test9-swap/prompts.txt "the test clips on another wall" \
      "STAGES=data bash tools/run_tiny_ablations.sh"
    has_stage long && need data/puppet/test33/prompts.txt "the 33-frame test clips" \
      "STAGES=data bash tools/run_tiny_ablations.sh"
  fi
  has_stage background && need data/puppet/test9/prompts.txt "the 32 test clips" "$TEST9"
  has_stage long && need dynamictrl/assets/models/dynamictrl-tiny/model_index.json "the shipped model" "git checkout dynamictrl/assets/models"
fi
[ $missing = 0 ] || exit 1

# ---------------------------------------------------------------- a failed stage says why: the command and its log's tail
STAGE=setup
CURRENT_LOG=
on_error() {
  local code=$?
  trap - ERR
  echo "error: stage $STAGE failed (exit $code): $BASH_COMMAND" >&2
  if [ -n "$CURRENT_LOG" ] && [ -s "$CURRENT_LOG" ]; then
    echo "last lines of $CURRENT_LOG:" >&2
    tail -n 20 "$CURRENT_LOG" >&2
  fi
  exit "$code"
}
trap on_error ERR

mkdir -p $R $O
log() { echo "$(date +%T) $*" | tee -a $R/ablations.log; }

declare -A OVERRIDES=(
  [padaln]="model.pose_control=padaln"
  [uvt]="model.pose_control=uvt"
  [cross_attn]="model.pose_control=cross_attn"
  [none]="model.pose_control=none"
  [notext]="model.pose_control=padaln model.use_text=false"
  [masked]="model.pose_control=padaln data.reference_mask_prob=0.5"
  [masked_all]="model.pose_control=padaln data.reference_mask_prob=1.0"
)

train_and_score() {  # variant seed [score]
  local name=$1 seed=$2 out=$R/$1-s$2 model=$R/export-$1-s$2
  if [ ! -f $out/final/transformer/config.json ]; then
    log "train $name seed $seed"
    CURRENT_LOG=$out.train.log
    # shellcheck disable=SC2086
    $ACCELERATE launch --config_file configs/accelerate/cpu.yaml scripts/train.py --config configs/train/tiny_puppet.yaml \
      train.max_steps=$STEPS train.seed=$seed train.output_dir=$out ${OVERRIDES[$name]} > $out.train.log 2>&1
  fi
  CURRENT_LOG=$out.train.log
  [ -f $model/model_index.json ] || $PY tools/build_tiny_model.py export --base runs/tiny-base \
    --transformer $out/final/transformer --out $model >> $out.train.log 2>&1
  [ "${3:-score}" = score ] || return 0
  if [ ! -f $R/$name-s$seed.both.json ]; then
    CURRENT_LOG=$out.eval.log
    $PY tools/animate_dataset.py --data data/puppet/test9 --model $model --out $O/$name-s$seed-other --steps 10 \
      --reference other-pose > $out.eval.log 2>&1
    $PY scripts/evaluate.py --gt data/puppet/test9 --pred $O/$name-s$seed-other --profile both \
      --out $R/$name-s$seed.both.json >> $out.eval.log 2>&1
  fi
  CURRENT_LOG=
  log "done $name seed $seed"
}

if has_stage train; then
  STAGE=train
  for seed in $SEEDS; do
    for name in $VARIANTS; do train_and_score $name $seed; done
  done
  train_and_score masked 1 no-score
  train_and_score masked_all 1 no-score
  CURRENT_LOG=$O/repeat-reference.log
  [ -f $O/repeat-reference.both.json ] || $PY scripts/evaluate.py --gt data/puppet/test9 --baseline repeat-reference \
    --profile both --out $O/repeat-reference.both.json > $CURRENT_LOG 2>&1
  CURRENT_LOG=
fi

if has_stage data; then  # the swapped-wall twin of the test clips, and 33-frame test clips
  STAGE=data
  [ -f data/puppet/test9-swap/prompts.txt ] || $PY tools/make_synthetic.py --out data/puppet/test9-swap --num 32 \
    --size 64 --frames 9 --split test --style demo --seed 100000 --swap-background
  [ -f data/puppet/test33/prompts.txt ] || $PY tools/make_synthetic.py --out data/puppet/test33 --num 8 --size 64 \
    --frames 33 --split test --style demo --seed 100000
fi

A="$PY tools/animate_dataset.py --steps 10"
E="$PY scripts/evaluate.py --profile clean"
if has_stage background; then  # text-controlled background: reference masked, prompt names a new wall
  STAGE=background
  M=$R/export-masked-s1 U=$R/export-padaln-s1 B=$O/bg
  $A --data data/puppet/test9-swap --model $M --out $B/masked-swap --reference other-pose --mask-reference
  $E --gt data/puppet/test9-swap --pred $B/masked-swap --out $R/bg-masked-swap.json
  $E --gt data/puppet/test9 --pred $B/masked-swap --out $R/bg-masked-swap-vs-old.json
  $A --data data/puppet/test9-swap --model $U --out $B/unmasked-swap --reference other-pose --mask-reference
  $E --gt data/puppet/test9-swap --pred $B/unmasked-swap --out $R/bg-unmasked-swap.json
  $E --gt data/puppet/test9 --pred $B/unmasked-swap --out $R/bg-unmasked-swap-vs-old.json
  $A --data data/puppet/test9-swap --model $M --out $B/masked-fullref-swap --reference other-pose
  $E --gt data/puppet/test9-swap --pred $B/masked-fullref-swap --out $R/bg-masked-fullref-swap.json
  $E --gt data/puppet/test9 --pred $B/masked-fullref-swap --out $R/bg-masked-fullref-swap-vs-old.json
  $A --data data/puppet/test9 --model $M --out $B/masked-own --reference other-pose --mask-reference
  $E --gt data/puppet/test9 --pred $B/masked-own --out $R/bg-masked-own.json
  M1=$R/export-masked_all-s1  # every training reference masked
  $A --data data/puppet/test9-swap --model $M1 --out $B/masked_all-swap --reference other-pose --mask-reference
  $E --gt data/puppet/test9-swap --pred $B/masked_all-swap --out $R/bg-masked_all-swap.json
  $A --data data/puppet/test9 --model $M1 --out $B/masked_all-own --reference other-pose --mask-reference
  $E --gt data/puppet/test9 --pred $B/masked_all-own --out $R/bg-masked_all-own.json
  log "background control done"
fi

if has_stage long; then  # 4 chained 9-frame clips per 33-frame clip, with and without colour matching
  STAGE=long
  L=$O/long
  BGS=(--background "a plain red wall" --background "a plain blue wall" --background "a plain yellow wall"
       --background "a plain green wall")
  for cm in color-match no-color-match; do
    $A --data data/puppet/test33 --model $R/export-masked-s1 --out $L/masked-$cm --clip-frames 9 --mask-reference \
      "${BGS[@]}" --$cm --contact-sheets 2
    $E --gt data/puppet/test33 --pred $L/masked-$cm --drift-clip-frames 8 --out $R/long-masked-$cm.json
    $A --data data/puppet/test33 --model dynamictrl/assets/models/dynamictrl-tiny --out $L/shipped-$cm --clip-frames 9 --$cm \
      --contact-sheets 2
    $E --gt data/puppet/test33 --pred $L/shipped-$cm --drift-clip-frames 8 --out $R/long-shipped-$cm.json
  done
  log "long videos done"
fi
