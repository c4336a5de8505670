#!/usr/bin/env bash
# Regenerate the shipped per-language thresholds (configs/thresholds/{en,zh}.yaml, included by
# configs/pipeline.yaml) with `dataengine calibrate` on the named reference sets of scripts/reference_sets.py.
# Run it again whenever a stage's signals or defaults change.
#   bash scripts/calibrate_shipped.sh [DATA_ROOT]      (default: ../shared/data)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DATA="$(cd "${1:-$ROOT/../shared/data}" && pwd)"
PY="${PY:-$ROOT/.venv/bin/python}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

"$PY" "$ROOT/scripts/reference_sets.py" "$DATA" "$WORK"
cd "$WORK"  # reference files are named as built (en.jsonl, zh.jsonl) in the YAML headers
"$PY" -m dataengine calibrate --reference en.jsonl --lang en --keep 0.95 \
  --output "$ROOT/configs/thresholds/en.yaml" \
  --name "WikiText-2 validation articles (English Wikipedia, CC BY-SA 3.0) + 10 English Project Gutenberg books \
in ~8,000-character chunks, 30 a book (reference/gutenberg: pg98 pg76 pg345 pg84 pg2701 pg1342 pg1661 pg972 \
pg4300 pg2600); built by scripts/reference_sets.py"
"$PY" -m dataengine calibrate --reference zh.jsonl --lang zh --keep 0.95 \
  --output "$ROOT/configs/thresholds/zh.yaml" \
  --name "CMRC 2018 zh-Wikipedia paragraphs (1,104, CC BY-SA 4.0) + SIGHAN 2005 bakeoff test news text \
(MSR, PKU simplified; AS, CityU traditional) in ~1,000-character documents; built by scripts/reference_sets.py"
