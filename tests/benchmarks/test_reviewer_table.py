"""benchmarks/reviewer_table.py: our rows are the mean ± std of the stored per-seed test figures of the named
row (not another row's), a row not run yet names the command that makes it, a row with fewer than three
seeds is flagged, and a spec that hides its split's facts or mislabels a grader is refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from benchmarks import reviewer_table as rt
from benchmarks.markdown_block import read_block


def run(hr: float, ndcg: float, auc: float | None = None) -> dict:
    test = {"rec": {"full": {"hr@10": hr, "ndcg@10": ndcg}}}
    if auc is not None:
        test["ranking"] = {"auc": auc}
    return {"test": test}


@pytest.fixture
def results(tmp_path: Path) -> Path:
    (tmp_path / "block-a.json").write_text(json.dumps({"runs": {
        "model": {"11": run(0.30, 0.10, 0.78), "12": run(0.32, 0.12, 0.80), "13": run(0.34, 0.14, 0.82)},
        "other": {"11": run(0.90, 0.90)},
    }}))
    (tmp_path / rt.LIBRARY_RESULTS).write_text(json.dumps({"runs": {"tiny": {"seeds": {
        "11": {"ours": {"hr@10": 0.2, "ndcg@10": 0.1}, "library": {"hr@10": 0.2, "ndcg@10": 0.1}},
        "12": {"ours": {"hr@10": 0.4, "ndcg@10": 0.3}, "library": {"hr@10": 0.4, "ndcg@10": 0.3}},
    }}}}))
    return tmp_path


def spec(rows: list[dict], facts: str | None = "6 users, 9 items") -> dict:
    section = {"heading": "ours", "rows": rows, **({"facts": facts} if facts else {})}
    published = {"heading": "papers", "kind": "published",
                 "rows": [{"label": "Paper", "source": "its README", "hr@10": 0.3152, "ndcg@10": 0.1821}]}
    return {"block": "b", "title": "T", "sections": [published, section]}


def render(results: Path, tmp_path: Path, rows: list[dict], facts: str | None = "6 users, 9 items") -> str:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec(rows, facts)))
    return rt.render(rt.load(path), results)


def line_of(block: str, label: str) -> str:
    return next(line for line in block.splitlines() if line.startswith(f"| {label} |"))


def test_our_row_is_the_mean_and_std_of_its_own_seeds(results: Path, tmp_path: Path) -> None:
    block = render(results, tmp_path, [{"label": "ours", "results": "block-a.json", "row": "model"}])
    assert line_of(block, "ours") == ("| ours | 0.3200 ± 0.0200 | 0.1200 ± 0.0200 | 0.8000 ± 0.0200 | 11, 12, 13 "
                                      "| `block-a.json` |")
    assert line_of(block, "Paper") == "| Paper | 0.3152 | 0.1821 | – | its README |"
    assert "6 users, 9 items" in block


def test_a_row_not_run_names_its_command_and_few_seeds_are_flagged(results: Path, tmp_path: Path) -> None:
    block = render(results, tmp_path, [
        {"label": "later", "results": "block-b.json", "row": "model"},
        {"label": "one seed", "results": "block-a.json", "row": "other"},
    ])
    assert "not run yet (`python benchmarks/quality.py --root ROOT --spec benchmarks/specs/block-b.yaml" in block
    assert "| 11 (fewer than 3) |" in line_of(block, "one seed")
    assert "| – |" in line_of(block, "one seed")  # no ranking AUC where the row has none


def test_library_rows_read_the_grader_asked_for(results: Path, tmp_path: Path) -> None:
    block = render(results, tmp_path, [{"label": "lib", "library": "tiny", "graded_by": "library"},
                                       {"label": "absent", "library": "ml1m", "graded_by": "ours"}])
    assert line_of(block, "lib").startswith("| lib | 0.3000 ± 0.1414 | 0.2000 ± 0.1414 | – | 11, 12 (fewer than 3) |")
    assert "library_reference.py --root ROOT --label ml1m" in line_of(block, "absent")
    with pytest.raises(SystemExit, match="graded_by"):
        render(results, tmp_path, [{"label": "lib", "library": "tiny", "graded_by": "theirs"}])


def test_a_section_of_ours_must_state_its_facts(results: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="facts"):
        render(results, tmp_path, [{"label": "ours", "results": "block-a.json", "row": "model"}], facts=None)


def test_benchmarks_md_holds_the_table_as_the_stored_results_render_it(tmp_path: Path) -> None:
    """A block other blocks' runs feed: re-render it (the command in its header) whenever they add runs."""
    markdown = tmp_path / "BENCHMARKS.md"
    shutil.copy(rt.ROOT / "BENCHMARKS.md", markdown)
    spec = rt.ROOT / "benchmarks" / "specs" / "ml1m-reviewer.yaml"
    assert rt.main(["--spec", str(spec), "--benchmarks-file", str(markdown)]) == 0
    name = rt.load(spec)["block"]
    assert read_block(markdown.read_text(), name) == read_block((rt.ROOT / "BENCHMARKS.md").read_text(), name)
    assert "| UniGRF | 0.3219 | 0.1765 | 0.7932 |" in read_block(markdown.read_text(), name)
