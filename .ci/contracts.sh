#!/usr/bin/env bash
# CI step: the data contracts accept good canonical tables and reject broken ones, through the real CLI.
#
#   .ci/contracts.sh [CANONICAL_DIR]
#
# CANONICAL_DIR holds items/interactions/searches.parquet (e.g. data/canonical after `unigrec stage
# ingest`); `unigrec validate` must exit 0 on it. Without it, the tiny valid fixture is used. Then
# broken fixtures from tests/support/contract_fixtures.py must each exit 1 and name their rule in the output.
# CONTRACT_CASES picks which broken cases to run ("all" for every one); the default covers each family
# of checks (reading, pandera, Great Expectations, cross-table) once, at ~3 s per CLI call.
set -euo pipefail
cd "$(dirname "$0")/.."

UNIGREC=.venv/bin/unigrec
PYTHON=.venv/bin/python
DEFAULT_CASES="corrupt_parquet missing_table_file non_utf8_text missing_column wrong_type duplicate_item_id \
dangling_interaction_item future_timestamp empty_table padded_user_id duplicate_interaction_row \
table_file_is_a_symlink_loop"
CASES="${CONTRACT_CASES:-$DEFAULT_CASES}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$PYTHON" tests/support/contract_fixtures.py "$work" >/dev/null
good="${1:-$work/valid}"

echo "contracts: validating $good (must pass)"
if ! "$UNIGREC" --log-level WARNING validate "$good" >"$work/good.out" 2>&1; then
    cat "$work/good.out"
    echo "contracts: FAIL - $good was rejected" >&2
    exit 1
fi

if [[ "$CASES" == "all" ]]; then
    CASES="$(cut -f1 "$work/cases.tsv" | tr '\n' ' ')"
fi

failed=0
for case in $CASES; do
    rule="$(awk -F'\t' -v c="$case" '$1 == c {print $2}' "$work/cases.tsv")"
    if [[ -z "$rule" ]]; then
        echo "contracts: unknown case '$case' (see $work/cases.tsv)" >&2
        exit 2
    fi
    status=0
    "$UNIGREC" --log-level WARNING validate "$work/$case" >"$work/$case.out" 2>&1 || status=$?
    if [[ "$status" -ne 1 ]]; then
        echo "contracts: FAIL - $case exited $status, expected 1" >&2
        cat "$work/$case.out" >&2
        failed=1
    elif ! grep -qF -- "$rule" "$work/$case.out"; then
        echo "contracts: FAIL - $case output does not name rule $rule" >&2
        cat "$work/$case.out" >&2
        failed=1
    else
        echo "contracts: ok - $case rejected ($rule)"
    fi
done

if [[ "$failed" -ne 0 ]]; then
    exit 1
fi
echo "contracts: all checks passed"
