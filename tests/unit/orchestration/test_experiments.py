"""Experiments as params overlays: an overlay becomes the same ``section.key=value`` overrides ``--set``
takes, every key checked against params.yaml before anything runs, and ``unigrec run --experiment`` hands
them to the pipeline run with ``--set`` winning."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from support import REPO

from unigrec.cli import main
from unigrec.config import params_from_dict
from unigrec.errors import UnigrecError
from unigrec.orchestration.experiments import (
    EXPERIMENTS_DIR,
    experiment_overrides,
    list_experiments,
    merge_overrides,
    overlay_assignments,
)
from unigrec.pipeline import apply_param_overrides

ROOT = REPO
PARAMS = {"ingest": {"path": None, "queries": {"search_fraction": 0.25}}, "make": {"width": 1, "names": {}}}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / EXPERIMENTS_DIR).mkdir(parents=True)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    return tmp_path


def _overlay(project: Path, name: str, text: str) -> Path:
    path = project / EXPERIMENTS_DIR / f"{name}.yaml"
    path.write_text(text)
    return path


def test_an_overlay_flattens_to_dotted_keys_nested_or_dotted_alike():
    overlay = {"ingest": {"queries": {"search_fraction": 0.01}, "path": "/d"}, "make.width": 3, "make": {"names": {"a": 1}}}
    assert overlay_assignments(overlay, PARAMS, "x.yaml") == {
        "ingest.queries.search_fraction": 0.01, "ingest.path": "/d", "make.width": 3,
        "make.names": {"a": 1},  # an empty mapping in params is one knob: replaced whole
    }


@pytest.mark.parametrize("text, key", [
    ("ingest:\n  queries:\n    search_fractoin: 0.01\n", "ingest.queries.search_fractoin"),
    ("ingets:\n  path: /d\n", "ingets"),
    ("make.width.deep: 1\n", "make.width.deep"),
])
def test_an_unknown_key_is_refused_naming_the_overlay_file_and_the_key(project: Path, text: str, key: str):
    path = _overlay(project, "typo", text)
    with pytest.raises(UnigrecError, match=f"{path}: {key} is not a key of params.yaml"):
        experiment_overrides(project, ["typo"])


def test_a_value_of_the_wrong_type_is_refused_before_any_stage(tmp_path: Path):
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    bad = tmp_path / "bad.yaml"
    bad.write_text("validate:\n  max_examples: many\n")
    with pytest.raises(UnigrecError, match=r"bad.yaml: params.validate.max_examples: 'many' is not a valid int"):
        experiment_overrides(tmp_path, [str(bad)])


def test_an_unknown_experiment_names_the_known_ones(project: Path):
    _overlay(project, "wide", "# Wider.\nmake:\n  width: 4\n")
    with pytest.raises(UnigrecError, match=r"no experiment 'wdie'.*known: wide"):
        experiment_overrides(project, ["wdie"])
    assert list_experiments(project) == [("wide", "Wider.")]


def test_overrides_written_back_give_the_overlay_values(project: Path):
    """The override text survives DVC's parser: strings that look like other things stay strings."""
    values = {"path": "../data/a b=c,it's", "queries": {"search_fraction": 0.001}}
    _overlay(project, "odd", yaml.safe_dump({"ingest": values, "make": {"width": None}}))
    apply_param_overrides(project, experiment_overrides(project, ["odd"]))
    written = yaml.safe_load((project / "params.yaml").read_text())
    assert written["ingest"] == values and written["make"]["width"] is None


def test_an_overlay_includes_others_first_and_its_own_keys_win(project: Path):
    _overlay(project, "base", "ingest:\n  path: /d\n  queries:\n    search_fraction: 0.01\n")
    _overlay(project, "wide", "make:\n  width: 2\n")
    _overlay(project, "recipe", "include: [base, wide]\ningest:\n  path: /e\nmake:\n  width: 3\n")
    assert experiment_overrides(project, ["recipe"]) == [
        "ingest.queries.search_fraction=0.01", "ingest.path='/e'", "make.width=3"]
    _overlay(project, "one", "include: base\n")  # a single name needs no list
    assert experiment_overrides(project, ["one"]) == ["ingest.path='/d'", "ingest.queries.search_fraction=0.01"]


def test_an_overlay_is_checked_with_its_includes_applied(tmp_path: Path):
    """The enhancer feeding the sampled softmax is valid only with the sampled softmax: split between an
    overlay and the one it includes, the pair passes; the overlay alone is refused by name (on params whose
    softmax is the full one, the default until 2026-12-07)."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train"]["retrieval_loss"]["softmax"] = "full"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    (tmp_path / EXPERIMENTS_DIR).mkdir(parents=True)
    _overlay(tmp_path, "sampled", "train:\n  retrieval_loss:\n    softmax: sampled\n")
    feeds = "train:\n  enhancer:\n    enabled: true\n    hard_negatives:\n      into: sampled_softmax\n"
    _overlay(tmp_path, "alone", feeds)
    _overlay(tmp_path, "paired", "include: [sampled]\n" + feeds)
    with pytest.raises(UnigrecError, match=r"alone.yaml: .*needs train\.retrieval_loss\.softmax: sampled"):
        experiment_overrides(tmp_path, ["alone"])
    assert "train.retrieval_loss.softmax='sampled'" in experiment_overrides(tmp_path, ["paired"])


@pytest.mark.parametrize("text, message", [
    ("include: [b]\n", r"a\.yaml: overlays include one another in a cycle \(a -> b -> a\)"),
    ("include: {b: 1}\n", r"include is an overlay name or a list of them"),
])
def test_an_include_cycle_or_a_bad_include_is_refused(project: Path, text: str, message: str):
    _overlay(project, "a", text)
    _overlay(project, "b", "include: [a]\n")
    with pytest.raises(UnigrecError, match=message):
        experiment_overrides(project, ["a"])


def test_later_groups_win_and_each_key_is_given_once():
    merged = merge_overrides(["a.b=1", "a.c=2"], [], ["a.b=3"])
    assert merged == ["a.c=2", "a.b=3"]


@pytest.mark.parametrize("name", [name for name, _ in list_experiments(ROOT)])
def test_every_shipped_overlay_is_made_of_real_params(name: str, tmp_path: Path):
    """A rename in params.yaml breaks this test, not a user's run hours in."""
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    path = ROOT / EXPERIMENTS_DIR / f"{name}.yaml"
    assert path.read_text().startswith("# "), "each overlay opens with a header saying what it is for"
    apply_param_overrides(tmp_path, experiment_overrides(ROOT, [name]))
    written = yaml.safe_load((tmp_path / "params.yaml").read_text())
    params_from_dict(written)  # the whole file still loads
    base = yaml.safe_load((ROOT / "params.yaml").read_text())
    own = yaml.safe_load(path.read_text())
    own.pop("include", None)  # the included overlays' keys: their own entries of this test
    for key, value in overlay_assignments(own, base, str(path)).items():
        node = written
        for part in key.split("."):
            node = node[part]
        assert node == value, key


def test_unigrec_run_hands_the_overlay_and_set_to_the_pipeline(monkeypatch, tmp_path: Path):
    import flows.training_pipeline as flow
    from unigrec.orchestration.run import PipelineResult

    seen = []
    monkeypatch.setattr(flow, "training_pipeline", flow.training_pipeline.fn)  # no Prefect server
    monkeypatch.setattr(flow, "run_pipeline", lambda root, request, **_: seen.append(request) or PipelineResult([], None))
    code = main(["run", "--root", str(ROOT), "--experiment", "atomic-ids", "--experiment", "ml1m",
                 "--set", "train.retrieval_loss.softmax=sampled", "--data-path", "/data/ml-1m",
                 "--stages", "train"])
    assert code == 0
    (request,) = seen
    assert request.stages == ["train"]
    # --set wins over the overlay's softmax: full
    assert request.overrides == [
        "train.model.item_representation='atomic'", "ingest.source='movielens-1m'",
        "evaluate.fusion_weights=[0.0,0.1,0.3,0.5]", "ingest.path='/data/ml-1m'",
        "train.retrieval_loss.softmax=sampled",
    ]


def test_unigrec_run_refuses_a_bad_overlay_before_the_flow_starts(monkeypatch, tmp_path: Path):
    import flows.training_pipeline as flow

    monkeypatch.setattr(flow, "training_pipeline", lambda **_: pytest.fail("the flow must not start"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  loss_weight:\n    ranking: 0\n")
    assert main(["run", "--root", str(ROOT), "--experiment", str(bad)]) == 2  # the CLI's one-line error


def test_unigrec_experiments_lists_every_overlay_with_its_title(capsys):
    assert main(["experiments", "--root", str(ROOT)]) == 0
    out = capsys.readouterr().out
    assert "ml1m-headline" in out and "tiger" in out and "Reference system: TIGER-style" in out
