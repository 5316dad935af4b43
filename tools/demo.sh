#!/usr/bin/env bash
# The main job (make demo): embed the shipped example annotations into an index and
# search it.
#
#   tools/demo.sh [--model DIR] [--query "TEXT"] [--work DIR]
#
# Model: --model DIR (or ORG/NAME), else $ASTEMBED_MODEL, else the pretrained
# sentence-transformers/all-MiniLM-L6-v2 pulled from the Hugging Face Hub into its
# cache (`astembed model pull`; a 3 s metadata timeout, no retries), else, when the
# Hub cannot be reached, a RANDOM-WEIGHT model of all-MiniLM-L6-v2's shape written
# from the config/tokenizer files shipped in examples/model-config. With random
# weights everything runs for real, but a vector ranking would be meaningless, so the
# query ranks lexically (FTS5 bm25 over a code tokenizer), which needs no model.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$root/build/astembed"
model="${ASTEMBED_MODEL:-}"
query="pack an IPv4 address into bytes"
work="$root/build/demo"
while [ $# -gt 0 ]; do
  case "$1" in
    --model) model="$2"; shift 2 ;;
    --query) query="$2"; shift 2 ;;
    --work) work="$2"; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "demo: unknown option $1" >&2; exit 2 ;;
  esac
done
[ -x "$bin" ] || { echo "demo: $bin missing: run 'make' first" >&2; exit 1; }
mkdir -p "$work"
random=0
if [ -z "$model" ]; then
  hub_model=sentence-transformers/all-MiniLM-L6-v2
  echo "+ astembed model pull $hub_model"
  if snap=$(HF_HUB_ETAG_TIMEOUT=${HF_HUB_ETAG_TIMEOUT:-3} ASTEMBED_HUB_RETRIES=${ASTEMBED_HUB_RETRIES:-0} \
            "$bin" model pull "$hub_model"); then
    model="$snap"
  fi
fi
if [ -z "$model" ]; then
  random=1
  model="$work/random-minilm"
  if [ ! -f "$model/model.safetensors" ]; then
    "$bin" model init-random --like "$root/examples/model-config/all-MiniLM-L6-v2" --out "$model" --seed 42
  fi
  echo "init-random wrote this folder: its weights are random, not pretrained." > "$model/RANDOM-WEIGHTS.txt"
  cat <<MSG
==========================================================================
 NOTE: no model folder given (--model DIR or ASTEMBED_MODEL), and the
 pretrained all-MiniLM-L6-v2 could not be pulled from the Hugging Face
 Hub (the error is above). This demo uses a
 RANDOM-WEIGHT model with all-MiniLM-L6-v2's shape ($model).
 Embedding and storage run for real, but its VECTORS ARE MEANINGLESS, so
 the query below ranks LEXICALLY (words and identifiers, no model). Point
 ASTEMBED_MODEL at a real all-MiniLM-L6-v2 folder (config.json,
 model.safetensors, tokenizer files) for hybrid (lexical + vector) search.
==========================================================================
MSG
fi
db="$work/index.db"
echo "+ astembed embed --input examples/annotations.jsonl --db $db --model $model --preset development --prune"
"$bin" embed --input "$root/examples/annotations.jsonl" --db "$db" --model "$model" \
  --preset development --prune --no-progress
echo
echo "+ astembed query \"$query\" --db $db --top 5"
"$bin" query "$query" --db "$db" --top 5
echo
echo "+ astembed stats --db $db"
"$bin" stats --db "$db"
if [ "$random" = 1 ]; then
  echo
  echo "(random-weight model: the ranking above is lexical; --mode vector would be meaningless)"
fi
