#!/usr/bin/env bash
# The GPU table of docs/benchmark.md: one scripts/benchmark.py run per row, then a Markdown table with each row's
# numbers beside the command that measured them (OUT/table.md; every run's JSON and log next to it).
#
#   bash tools/gpu_benchmark.sh                                     # every row on the GPU, random weights
#   DYNAMICTRL_MODEL_15=/models/DynamiCtrl-5B bash tools/gpu_benchmark.sh       # the 1.5 rows with real weights
#   bash tools/gpu_benchmark.sh --rows default-eager,default-24gb --dry-run    # print the commands only
#   bash tools/gpu_benchmark.sh --tiny                              # the same rows on the tiny presets (CPU, minutes)
#
# Rows: default-* = CogVideoX1.5-5B-I2V layout at the official default, 37 frames 768x1360, 25 steps; 480-* =
# CogVideoX-5B-I2V layout at 49x480x720. eager: no runtime flag; best: --compile on --fuse-qkv on (the exact
# speed-ups; sdpa picks the flash kernel itself); 24gb / 16gb / 12gb: the --memory presets (docs/inference.md).
#
# Weights: DYNAMICTRL_MODEL_15 (and DYNAMICTRL_MODEL_10 for the 480 rows) is a pipeline folder with transformer/,
# vae/ and scheduler/ (an official release folder as downloaded); or DYNAMICTRL_BASE_15 (the CogVideoX1.5-5B-I2V
# folder) with DYNAMICTRL_TRANSFORMER_15 (the DynamiCtrl transformer folder), linked into OUT/model_15 (_10
# likewise). Unset: random weights of the real shapes (the same compute and memory; the table says which).
# POSE_CONTROL: the checkpoint's pose structure (padaln). PY: the Python to run (.venv/bin/python if it exists).
# OUT: where everything goes (outputs/gpu_benchmark, or outputs/gpu_benchmark_tiny with --tiny).
set -Eeuo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PY:-}" ]; then
  PY=python
  [ -x .venv/bin/python ] && PY=.venv/bin/python
fi
POSE_CONTROL=${POSE_CONTROL:-padaln}
MODEL_15=${DYNAMICTRL_MODEL_15:-}
BASE_15=${DYNAMICTRL_BASE_15:-}
TRANSFORMER_15=${DYNAMICTRL_TRANSFORMER_15:-}
MODEL_10=${DYNAMICTRL_MODEL_10:-}
BASE_10=${DYNAMICTRL_BASE_10:-}
TRANSFORMER_10=${DYNAMICTRL_TRANSFORMER_10:-}

# name | size (default or 480) | the row's runtime flags
ROWS=(
  "default-eager|default|"
  "default-best|default|--compile on --fuse-qkv on"
  "default-24gb|default|--memory 24gb"
  "default-16gb|default|--memory 16gb"
  "default-12gb|default|--memory 12gb"
  "480-eager|480|"
  "480-best|480|--compile on --fuse-qkv on"
  "480-24gb|480|--memory 24gb"
)
usage="bash tools/gpu_benchmark.sh [--tiny] [--dry-run] [--rows NAME,...] [--out DIR]"

tiny=0 dry=0 only="" out=""
while [ $# -gt 0 ]; do
  case $1 in
    --tiny) tiny=1 ;;
    --dry-run) dry=1 ;;
    --rows | --out)
      [ $# -ge 2 ] || { echo "error: $1 needs a value ($usage)" >&2; exit 2; }
      [ "$1" = --rows ] && only=$2 || out=$2
      shift ;;
    -h | --help) sed -n '2,/^set -E/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "error: unknown argument $1 ($usage)" >&2; exit 2 ;;
  esac
  shift
done
suffix=""
[ $tiny = 0 ] || suffix=_tiny
OUT=${out:-${OUT:-outputs/gpu_benchmark$suffix}}
names=$(printf '%s\n' "${ROWS[@]}" | cut -d'|' -f1)
if [ -n "$only" ]; then
  for name in ${only//,/ }; do
    grep -qx -- "$name" <<< "$names" || { echo "error: no row $name (rows: $(echo $names | tr ' ' ,))" >&2; exit 2; }
  done
fi

# the size arguments of each row kind; --tiny keeps the rows and shrinks the model and the video
if [ $tiny = 1 ]; then
  SIZE_default="--preset tiny-1.5 --frames 9 --height 64 --width 64"
  SIZE_480="--preset tiny --frames 9 --height 32 --width 32"
  COMMON="--steps 2 --repeats 1 --warmup 1 --threads 1 --compile-backend aot_eager --pose-control $POSE_CONTROL"
else
  SIZE_default="--preset cogvideox1.5-5b-i2v --frames 37 --height 768 --width 1360"
  SIZE_480="--preset cogvideox-5b-i2v --frames 49 --height 480 --width 720"
  COMMON="--steps 25 --pose-control $POSE_CONTROL"
fi

weights() {  # base version (15 or 10) -> WEIGHTS=(--model DIR) or (--random-init)
  local model base transformer
  if [ "$1" = 15 ]; then model=$MODEL_15 base=$BASE_15 transformer=$TRANSFORMER_15
  else model=$MODEL_10 base=$BASE_10 transformer=$TRANSFORMER_10; fi
  if [ $tiny = 1 ] || { [ -z "$model" ] && [ -z "$base" ] && [ -z "$transformer" ]; }; then
    WEIGHTS=(--random-init)
    return
  fi
  if [ -z "$model" ]; then
    if [ -z "$base" ] || [ -z "$transformer" ]; then
      echo "error: DYNAMICTRL_BASE_$1 and DYNAMICTRL_TRANSFORMER_$1 go together (or DYNAMICTRL_MODEL_$1 alone)" >&2
      return 2
    fi
    for dir in "$base/vae" "$base/scheduler" "$transformer"; do
      [ -d "$dir" ] || { echo "error: $dir is not a folder (DYNAMICTRL_BASE_$1/{vae,scheduler}, DYNAMICTRL_TRANSFORMER_$1)" >&2; return 2; }
    done
    model=$OUT/model_$1  # the pipeline folder the benchmark's --model reads: links, no copies
    mkdir -p "$model"
    ln -sfn "$(cd "$base" && pwd)/vae" "$model/vae"
    ln -sfn "$(cd "$base" && pwd)/scheduler" "$model/scheduler"
    ln -sfn "$(cd "$transformer" && pwd)" "$model/transformer"
  fi
  for sub in transformer vae scheduler; do
    [ -d "$model/$sub" ] || { echo "error: $model has no $sub/ (DYNAMICTRL_MODEL_$1 is a pipeline folder)" >&2; return 2; }
  done
  WEIGHTS=(--model "$model")
}

mkdir -p "$OUT"
weights 15 || exit 2
WEIGHTS_15=("${WEIGHTS[@]}")
weights 10 || exit 2
WEIGHTS_10=("${WEIGHTS[@]}")
read -r -a common <<< "$COMMON"
: > "$OUT/rows.tsv"
for row in "${ROWS[@]}"; do
  IFS='|' read -r name size flags <<< "$row"
  if [ -n "$only" ] && [[ ",$only," != *",$name,"* ]]; then continue; fi
  if [ "$size" = default ]; then
    read -r -a size_args <<< "$SIZE_default"
    weights_args=("${WEIGHTS_15[@]}")
  else
    read -r -a size_args <<< "$SIZE_480"
    weights_args=("${WEIGHTS_10[@]}")
  fi
  read -r -a flag_args <<< "$flags"
  args=("${size_args[@]}" "${weights_args[@]}" "${common[@]}" "${flag_args[@]}" --json "$OUT/$name.json")
  command="python scripts/benchmark.py$(printf ' %q' "${args[@]}")"
  printf '%s\t%s\t%s\n' "$name" "${weights_args[*]}" "$command" >> "$OUT/rows.tsv"
  echo "$command"
  [ $dry = 1 ] && continue
  rm -f "$OUT/$name.json"
  if ! "$PY" scripts/benchmark.py "${args[@]}" > "$OUT/$name.log" 2>&1; then
    echo "  failed: the last lines of $OUT/$name.log:" >&2
    tail -n 5 "$OUT/$name.log" >&2
  fi
done
[ $dry = 1 ] && exit 0

# the table: each row's numbers (from its JSON) beside its command
"$PY" - "$OUT" > "$OUT/table.md" <<'PY'
import json, sys
from pathlib import Path

out = Path(sys.argv[1])

def timing(value):
    if not isinstance(value, dict) or value.get("median") is None:
        return "—"
    spread = (value["max"] - value["min"]) / 2
    return f"{value['median']:.3g} ± {spread:.2g}" if len(value["samples"]) > 1 else f"{value['median']:.3g}"

lines, environment, steps = [], None, None
for line in (out / "rows.tsv").read_text().splitlines():
    name, weights, command = line.split("\t")
    weights = "random (real shapes)" if weights == "--random-init" else weights.removeprefix("--model ")
    path = out / f"{name}.json"
    if not path.is_file():
        cells = [f"failed: see {out / (name + '.log')}", "—", "—"]
    else:
        report = json.loads(path.read_text())
        environment, steps = report["environment"], report["steps"]
        row = report["rows"][0]
        if "error" in row:
            cells = [f"skipped: {row['error']}", "—", "—"]
        else:
            cells = [timing(row["step_cfg2_s"]), timing(row["e2e_s"]), f"{row['peak_e2e_gb']:.3g}"]
    lines.append(f"| {name} | " + " | ".join(cells) + f" | {weights} | `{command}` |")
print(f"| row | step_cfg2_s | e2e_s ({steps} steps) | peak_e2e_gb | weights | command |")
print("| --- | --- | --- | --- | --- | --- |")
print("\n".join(lines))
if environment:
    print(f"\n{environment['device_name']} ({environment['device']}), torch {environment['torch']}, "
          f"diffusers {environment['diffusers']}; peak_e2e_gb: {'CUDA max_memory_allocated' if environment['device'].startswith('cuda') else 'peak RSS of the process'}")
PY
cat "$OUT/table.md"
