#!/bin/sh
# The offline benchmark suite behind docs/benchmarks.md (section "Benchmark harness"): generate the tasks (fixed
# seeds), run every method with the offline policies (no API key, no network), report.
# Usage: sh benchmarks/offline_suite.sh [OUT_DIR]   (default: bench-data; ~5 minutes)
# Against a real model: add --model openai:gpt-5 --sub-model openai:gpt-5-mini to `run`.
set -eu
cd "$(dirname "$0")/.."
OUT=${1:-bench-data}
RLMX=".venv/bin/rlmx"
mkdir -p "$OUT"
$RLMX bench generate sniah --n 8 --seed 0 --lengths 8k,32k,128k,1m --out "$OUT/sniah.jsonl"
$RLMX bench generate oolong --n 12 --seed 0 --lengths 8k,32k,128k --out "$OUT/oolong.jsonl"
$RLMX bench generate oolong-pairs --n 9 --seed 0 --lengths 8k,32k --out "$OUT/oolong-pairs.jsonl"
$RLMX bench generate codeqa --n 9 --seed 0 --lengths 32k,128k --out "$OUT/codeqa.jsonl"
$RLMX bench run "$OUT/sniah.jsonl" "$OUT/oolong.jsonl" "$OUT/oolong-pairs.jsonl" "$OUT/codeqa.jsonl" \
  --methods base,retrieval,rlm-d0,rlm-d1,rlm-d2 --no-cache --home "$OUT/home" --out "$OUT/offline.jsonl" --quiet
$RLMX bench report "$OUT/offline.jsonl" --out "$OUT/bench.md" --plots docs/img \
  --title "Offline benchmark results (scripted policies, not models)"
