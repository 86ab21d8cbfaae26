#!/usr/bin/env bash
# Is CPU training bitwise repeatable? Train one epoch twice, in fresh processes, on a copy of a project's
# data and params, and print the sha256 of each model.pt with its training speed.
#   benchmarks/train_repeatability.sh [PROJECT_ROOT] [VAR=VALUE ...]
#   benchmarks/train_repeatability.sh . OMP_NUM_THREADS=1
# The project must have run up to the identifiers stage (data/ and .cache/unigrec query vectors).
set -euo pipefail
root=$(cd "${1:-.}" && pwd); shift || true
here=$(cd "$(dirname "$0")/.." && pwd)
py="$here/.venv/bin/python"; [ -x "$py" ] || py=python
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cp -r "$root/data" "$root/params.yaml" "$work/"
mkdir -p "$work/.cache" && cp -r "$root/.cache/unigrec" "$work/.cache/" 2>/dev/null || true
"$py" - "$work/params.yaml" <<'PY'
import sys, yaml
path = sys.argv[1]
params = yaml.safe_load(open(path))
params["train"]["trainer"]["max_epochs"] = 1
yaml.safe_dump(params, open(path, "w"), sort_keys=False)
PY
for run in 1 2; do
  rm -rf "$work/models" "$work/.cache/unigrec/train"
  env "$@" TQDM_DISABLE=1 "$py" -m unigrec.cli --log-level WARNING stage train --root "$work" >"$work/train$run.log" 2>&1
  digest=$(sha256sum "$work/models/generative/model.pt" | cut -c1-16)
  speed=$("$py" -c "import json,sys; print(json.load(open(sys.argv[1]))['training']['train_sequences_per_second'])" "$work/metrics/train.json")
  echo "run $run: model.pt $digest, $speed sequences/s ${*:-(default threads)}"
done
