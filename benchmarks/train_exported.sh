#!/usr/bin/env bash
# Train the projects `benchmarks/seeds.py --export` wrote, side by side, on this machine (e.g. a GPU one
# lent for minutes), then pack what `--adopt` needs back on the machine that evaluates.
#
# Why a script: a lent machine has a hard time limit and hands back only one folder. Every project trains in
# the background with the same limit; a run cut short keeps its checkpoints in the pack, and the next call
# (with the pack unpacked over the exports) resumes it, because `train.trainer.resume` is on in the exports.
#
# Usage (from the repository root, so `src/` is importable without installing):
#   benchmarks/train_exported.sh [--accelerator gpu] [--limit SECONDS] [--out DIR] EXPORT_DIR...
#   e.g. benchmarks/train_exported.sh --accelerator gpu --limit 450 --out "$OUT" exports/two-stage-12
# Then, where seeds.py runs:  tar xzf DIR/EXPORT_NAME.tgz -C EXPORT_PARENT  and  seeds.py ... --adopt ...
# The interpreter is $PYTHON (default python3): it needs torch, Lightning and pandas, not the package.
set -euo pipefail

accelerator=""
limit=0
out="."
while [[ $# -gt 0 ]]; do
  case "$1" in
    --accelerator) accelerator="$2"; shift 2 ;;
    --limit) limit="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    -*) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    *) break ;;
  esac
done
[[ $# -gt 0 ]] || { echo "name at least one export folder (see --help)" >&2; exit 2; }
mkdir -p "$out"
repo=$(cd "$(dirname "$0")/.." && pwd)
export PYTHONPATH="$repo/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TQDM_DISABLE=1
py="${PYTHON:-python3}"

# A model row's export is one project (params.yaml at its top); a system's is one per model beneath it.
projects=()
for export in "$@"; do
  while IFS= read -r params; do projects+=("$(dirname "$params")"); done \
    < <(find "$export" -maxdepth 2 -name params.yaml -not -path "*/.cache/*" | sort)
done
[[ ${#projects[@]} -gt 0 ]] || { echo "no params.yaml under $*: not seeds.py --export folders" >&2; exit 2; }

for project in "${projects[@]}"; do
  if [[ -n "$accelerator" ]]; then  # the one train key --adopt lets differ besides progress bar and resume
    "$py" - "$project/params.yaml" "$accelerator" <<'EOF'
import sys, yaml
path, accelerator = sys.argv[1], sys.argv[2]
params = yaml.safe_load(open(path, encoding="utf-8"))
params["train"]["trainer"]["accelerator"] = accelerator
open(path, "w", encoding="utf-8").write(yaml.safe_dump(params, sort_keys=False))
EOF
  fi
  log="$out/$(echo "${project#/}" | tr '/' '_').log"
  (
    cd "$project"
    rc=0
    timeout "$limit" "$py" -c "import sys; from unigrec.cli import main; sys.exit(main(['stage', 'train']))" \
      > "$log" 2>&1 || rc=$?
    echo "exit status $rc (124: stopped by --limit; the pack keeps its checkpoints to resume)" >> "$log"
  ) &
done
wait

# One pack per export folder, holding what training wrote (model, metrics, plots, checkpoints), not the inputs.
for export in "$@"; do
  name=$(basename "$export")
  (cd "$(dirname "$export")" && find "$name" \( -path "*/models/*" -o -path "*/metrics/*" -o -path "*/plots/*" \
    -o -path "*/.cache/unigrec/train/*" -o -name params.yaml \) -type f -print0 \
    | tar czf "$out/$name.tgz" --null -T -)
  echo "$out/$name.tgz"
done
