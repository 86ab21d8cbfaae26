#!/usr/bin/env bash
# Train the projects `benchmarks/quality.py --export` wrote, side by side, on this machine (e.g. a GPU one
# lent for minutes), then pack what `--adopt` needs back on the machine that evaluates.
#
# Why a script: a lent machine has a hard time limit and hands back only one folder. Every project trains in
# the background under the same limit with `train.trainer.resume` on; a run cut short keeps its checkpoints
# in the pack, and the next call (with the pack unpacked over the exports) continues it.
#
# Usage (from anywhere; `src/` of this checkout is put on the path, nothing needs installing):
#   benchmarks/train_exported.sh [--accelerator gpu] [--limit SECONDS] [--out DIR] EXPORT_DIR...
#   e.g. benchmarks/train_exported.sh --accelerator gpu --limit 450 --out "$OUT" exports/two-stage-12
# --limit 0 (the default) is no limit. Then, where quality.py runs: tar xzf OUT/NAME.tgz -C PARENT_OF_EXPORT
# and quality.py ... --adopt "LABEL@SEED=EXPORT_DIR". Interpreter: $PYTHON (default python3), with torch,
# Lightning, pandas and PyYAML. Exit status: 0 when every run finished or was stopped by the limit.
set -euo pipefail

accelerator=""
limit=0
out="."
while [[ $# -gt 0 ]]; do
  case "$1" in
    --accelerator) accelerator="$2"; shift 2 ;;
    --limit) limit="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    -*) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    *) break ;;
  esac
done
[[ $# -gt 0 ]] || { echo "name at least one export folder (see --help)" >&2; exit 2; }
mkdir -p "$out"
out=$(cd "$out" && pwd)  # the runs and the packing cd elsewhere
repo=$(cd "$(dirname "$0")/.." && pwd)
export PYTHONPATH="$repo/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TQDM_DISABLE=1
py="${PYTHON:-python3}"

exports=()
declare -A seen=()
for export in "$@"; do
  [[ -d "$export" ]] || { echo "$export: no such folder" >&2; exit 2; }
  name=$(basename "$(cd "$export" && pwd)")
  [[ -z "${seen[$name]:-}" ]] || { echo "two exports named $name: their packs would overwrite each other" >&2; exit 2; }
  seen[$name]=1
  exports+=("$(cd "$export" && pwd)")
done

# A one-model row's export is one project (params.yaml at its top); a row with a ranker has one per model
# beneath it (retrieval/, ranking/).
projects=()
for export in "${exports[@]}"; do
  while IFS= read -r params; do projects+=("$(dirname "$params")"); done \
    < <(find "$export" -maxdepth 2 -name params.yaml -not -path "*/.cache/*" | sort)
done
[[ ${#projects[@]} -gt 0 ]] || { echo "no params.yaml under $*: not quality.py --export folders" >&2; exit 2; }

pids=()
for project in "${projects[@]}"; do
  # resume on whatever the export says (this script relies on it), the accelerator if asked: the train keys
  # --adopt lets differ, with the progress bar
  "$py" - "$project/params.yaml" "$accelerator" <<'EOF'
import sys, yaml
path, accelerator = sys.argv[1], sys.argv[2]
params = yaml.safe_load(open(path, encoding="utf-8"))
params["train"]["trainer"]["resume"] = True
if accelerator:
    params["train"]["trainer"]["accelerator"] = accelerator
open(path, "w", encoding="utf-8").write(yaml.safe_dump(params, sort_keys=False))
EOF
  log="$out/$(basename "$(dirname "$project")")_$(basename "$project").log"
  (
    cd "$project"
    rc=0
    # -k: a run that ignores SIGTERM is killed a minute later, so the packing still happens in time
    timeout -k 60 "$limit" "$py" -c "import sys; from unigrec.cli import main; sys.exit(main(['stage', 'train']))" \
      > "$log" 2>&1 || rc=$?
    echo "exit status $rc (124: stopped by --limit; the pack keeps its checkpoints to resume)" >> "$log"
    exit "$rc"
  ) &
  pids+=($!)
done
failed=0
for i in "${!pids[@]}"; do
  rc=0
  wait "${pids[$i]}" || rc=$?
  echo "${projects[$i]}: exit status $rc"
  [[ $rc -eq 0 || $rc -eq 124 ]] || failed=1
done

# One pack per export: what training wrote (model, metrics, plots, params), not the inputs; the checkpoints
# only of runs not yet complete, since a finished run's optimiser state is dead weight on the way back.
for export in "${exports[@]}"; do
  name=$(basename "$export")
  (
    cd "$(dirname "$export")"
    find "$name" \( -path "*/models/*" -o -path "*/metrics/*" -o -path "*/plots/*" -o -path "*/.cache/unigrec/train/*" \
      -o -name params.yaml \) -type f -print | while IFS= read -r file; do
        if [[ "$file" == */.cache/unigrec/train/* ]]; then
          state="${file%%/.cache/unigrec/train/*}/.cache/unigrec/train/resume.json"
          grep -q '"complete": true' "$state" 2>/dev/null && continue
        fi
        printf '%s\0' "$file"
      done | tar czf "$out/$name.tgz" --null -T -
  )
  echo "$out/$name.tgz"
done
exit "$failed"
