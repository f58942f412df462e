#!/bin/sh
# Fan-out figures of issue 10, item 3 (docs/benchmarks.md, "Performance: fan-out"): rlmx
# through HTTP, rlmx without HTTP, the server's ceiling (a bare aiohttp session) and the openai
# SDK alone, at concurrency 64 and 16, interleaved round by round; prints min / median / max
# of the ratio to the ideal per row. Usage: sh benchmarks/fanout_matrix.sh [ROUNDS]
set -eu
cd "$(dirname "$0")/.."
rounds=${1:-3}
out=$(mktemp)
r=0
while [ "$r" -lt "$rounds" ]; do
  r=$((r + 1))
  for c in 64 16; do
    for v in rlmx --no-http --server-ceiling --bare-sdk; do
      flag=$v; [ "$v" = rlmx ] && flag=""
      # shellcheck disable=SC2086
      printf '%s|%s|%s\n' "$c" "$v" "$(env -u PYTHONDONTWRITEBYTECODE .venv/bin/python benchmarks/fanout.py --repeat 1 --json --concurrency "$c" $flag)" >> "$out"
    done
  done
done
.venv/bin/python - "$out" <<'PY'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    c, v, js = line.rstrip("\n").split("|", 2)
    rows.setdefault((int(c), v), []).append(json.loads(js)[0]["ratio"])
print("concurrency  variant            ratio to ideal: min / median / max")
for (c, v), xs in sorted(rows.items(), key=lambda kv: (-kv[0][0], kv[0][1])):
    print(f"{c:>11}  {v:<17}  {min(xs):.3f} / {statistics.median(xs):.3f} / {max(xs):.3f}")
PY
rm -f "$out"
