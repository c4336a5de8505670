#!/usr/bin/env bash
# A plain install works: build the wheel, install it WITHOUT extras into a fresh venv, and run the main job on
# the bundled sample from a directory outside the checkout (configs come from the wheel, nothing from the tree).
#   bash scripts/check_wheel.sh [WORKDIR]      (default: a new temporary folder, removed afterwards)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PY:-python3}"
WORK="${1:-$(mktemp -d)}"
[ -n "${1:-}" ] || trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK"

echo "== build the wheel"
"$PY" -m venv "$WORK/build-env"
"$WORK/build-env/bin/pip" install -q --upgrade pip build
"$WORK/build-env/bin/python" -m build --wheel --outdir "$WORK/dist" "$ROOT" >"$WORK/build.log" 2>&1 \
  || { cat "$WORK/build.log"; exit 1; }
WHEEL="$(ls "$WORK"/dist/dataengine-*.whl)"
echo "$WHEEL"

echo "== install it without extras into a fresh venv (torch's CPU build first)"
"$PY" -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install -q --upgrade pip
"$WORK/venv/bin/pip" install -q torch==2.13.0
"$WORK/venv/bin/pip" install -q "$WHEEL"

echo "== run from outside the checkout"
mkdir -p "$WORK/elsewhere"
cd "$WORK/elsewhere"
export PATH="$WORK/venv/bin:$PATH"
inputs=()
for f in "$ROOT"/sample/*; do
  [ "$(basename "$f")" = NOTICE ] || inputs+=(--input "$f")
done
dataengine run configs/pipeline.yaml "${inputs[@]}" --output out --quiet
python - <<'EOF'
import json
run = json.load(open("out/run.json"))
assert run["input"] == run["kept"] + run["rejected"] and run["kept"] > 0, run
print(f"wheel run: {run['input']} documents in, {run['kept']} kept, {run['rejected']} rejected")
import dataengine
cfg = dataengine.load_pipeline_config("configs/pipeline.yaml")
print("load_pipeline_config from", __import__("os").getcwd(), "ok")
EOF
test -s out/report.html
python -m train --help >/dev/null
python -m eval --help >/dev/null
python -m train.experiment --help >/dev/null
dataengine --help >/dev/null
echo "wheel check passed"
