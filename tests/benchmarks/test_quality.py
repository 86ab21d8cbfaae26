"""benchmarks/quality.py: specs whose rows are overlays, each run's params written by the product's override
path, the checks that fail before a queue starts, the blocks re-rendered from stored results, and runs on a
tiny project (baselines, a two-stage system trained here or elsewhere and adopted, TIGER's own identifiers)."""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml
from support.evaluate_project import tiny_project

from benchmarks import quality
from benchmarks.markdown_block import read_block
from unigrec.paths import Layout
from unigrec.registry.gate import flatten_mapping

ROOT = Path(__file__).resolve().parents[2]
SPECS = ROOT / "benchmarks" / "specs"
HEADLINE = ("unigrec, atomic IDs, search loss weight 0.1, prompt-mean monitor, 30 epochs, all validation users, "
            "d_model 128 (bf16)")
# a 40-item catalogue with 1+9 lists, and models and baselines small enough for a test
TINY = {
    "evaluate.sampled_hr_cutoffs": [1, 5, 10], "evaluate.sampled_ndcg_cutoffs": [5],
    "evaluate.full_hr_cutoffs": [5, 10], "evaluate.full_ndcg_cutoffs": [5, 10], "evaluate.curve_max_k": 10,
    "evaluate.beam_size": 20, "evaluate.pipeline_k": 10, "evaluate.pipeline_ndcg_cutoff": 5,
    "evaluate.cold_user_max_events": 14, "evaluate.fusion_weights": [0.0, 0.5],
    "baselines.sasrec.max_len": 10, "baselines.sasrec.hidden": 16, "baselines.sasrec.epochs": 2,
    "baselines.sasrec.batch_size": 16,
    "train.max_events": 20, "train.trainer.max_epochs": 1, "train.model.d_model": 16, "train.model.d_ff": 32,
}


def _spec(tmp_path: Path, rows: list, **extra) -> Path:
    spec = {"title": "Tiny", "block": "tiny", "seeds": [1, 2], "set": TINY, "rows": rows, **extra}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _params(overrides: list[str], tmp_path: Path, name: str) -> dict:
    return quality.write_params(tmp_path / name, overrides)


def test_a_row_is_the_data_overlays_then_its_own_then_its_keys_then_the_seed(tmp_path: Path):
    spec = quality.load_spec(_spec(tmp_path, [
        {"label": "m", "experiments": ["atomic-ids"], "set": {"train.model.d_model": 24}, "seed_key": "train.seed"},
        {"label": "two", "experiments": ["retrieval-only"], "ranker": ["ranking-only"], "seed_key": "train.seed"},
    ], experiments=["ml1m"]))
    (model,) = quality.part_overrides(spec, spec.rows[0], 7).values()
    params = _params(model, tmp_path, "m")
    assert params["ingest"]["source"] == "movielens-1m" and params["train"]["model"]["item_representation"] == "atomic"
    assert params["train"]["model"]["d_model"] == 24 and params["train"]["seed"] == 7  # the row's keys win
    parts = quality.part_overrides(spec, spec.rows[1], 3)
    assert list(parts) == ["retrieval", "ranking"]
    weights = [_params(o, tmp_path, n)["train"]["loss_weights"]["ranking"] for n, o in parts.items()]
    assert weights == [0.0, 1.0]


def test_an_unknown_key_in_a_spec_stops_naming_the_spec_row_and_key(tmp_path: Path):
    spec = quality.load_spec(_spec(tmp_path, [{"label": "m", "set": {"train.model.d_modle": 24}}]))
    with pytest.raises(Exception, match=r"spec.yaml: row 'm': train.model.d_modle is not a key of params.yaml"):
        quality.part_overrides(spec, spec.rows[0], None)


def test_spec_rows_are_checked(tmp_path: Path):
    with pytest.raises(SystemExit, match="unknown keys"):
        quality.load_spec(_spec(tmp_path, [{"label": "x", "params": {}}]))
    with pytest.raises(SystemExit, match="unique"):
        quality.load_spec(_spec(tmp_path, [{"label": "x"}, {"label": "x"}]))
    with pytest.raises(SystemExit, match="one seed"):
        quality.load_spec(_spec(tmp_path, [{"label": "x"}], layout="comparison"))


def test_a_probe_takes_rows_by_label_and_variants_add_keys(tmp_path: Path):
    base = _spec(tmp_path, [{"label": "m", "experiments": ["atomic-ids"], "seed_key": "train.seed"}],
                 experiments=["ml1m"])
    probe = tmp_path / "probe.yaml"
    probe.write_text(yaml.safe_dump({"title": "P", "block": "p", "seeds": [1], "rows_from": base.name, "rows": [
        "m", {"label": "m2", "from": "m", "set": {"train.seed": 2}}, {"label": "m3", "from": "m2", "set": {"a.b": 1}}]}))
    spec = quality.load_spec(probe)
    assert spec.experiments == ("ml1m",) and spec.set == TINY, "the data's overlays come with the rows"
    assert spec.rows[0] == quality.load_spec(base).rows[0]
    assert spec.rows[2].set == {"train.seed": 2, "a.b": 1} and spec.rows[2].experiments == ("atomic-ids",)
    probe.write_text(yaml.safe_dump({"title": "P", "block": "p", "seeds": [1], "rows_from": base.name,
                                     "rows": [{"label": "m2", "from": "m", "seed_key": "x"}]}))
    with pytest.raises(SystemExit, match="label, set and seeds only"):
        quality.load_spec(probe)


@pytest.mark.parametrize("name", ["ml1m.yaml", "ml1m-protocol.yaml", "ml100k.yaml", "ablation.yaml", "ml100k-hybrid.yaml",
                                  "ml1m-unigrf-ablation.yaml", "ml100k-coverage.yaml", "ml1m-1pct-41.yaml",
                                  "ml1m-1pct-default-recipe.yaml", "ml100k-default-candidate.yaml",
                                  "ml1m-1pct-headline.yaml", "ml1m-unigrf-confirm.yaml", "ml1m600-past-actions.yaml",
                                  "ml1m-1pct-sized-default.yaml"])
def test_every_row_of_the_shipped_specs_writes_real_params(name: str, tmp_path: Path):
    """A key renamed in params.yaml fails here, not hours into a benchmark when its row's turn comes."""
    spec = quality.load_spec(SPECS / name)
    for row in spec.rows:
        for part, overrides in quality.part_overrides(spec, row, 5).items():
            params = _params(overrides, tmp_path, f"{row.label}-{part}")
            if row.seed_key:
                assert quality.dig(params, row.seed_key.split(".")) == 5


def test_the_headline_overlay_is_the_row_chain_that_produced_its_figures(tmp_path: Path):
    spec = quality.load_spec(SPECS / "ml1m-protocol.yaml")
    rows = {row.label: row for row in spec.rows}
    parent = rows[HEADLINE.removesuffix(", d_model 128 (bf16)")]
    chain = quality.Row("chain", parent.experiments, {**parent.set, "train.model.d_model": 128,
                        "train.model.d_ff": 512, "train.trainer.precision": "bf16-mixed"}, "train.seed")
    (headline,), (chained,) = (quality.part_overrides(spec, r, 11).values() for r in (rows[HEADLINE], chain))
    assert _params(headline, tmp_path, "a") == _params(chained, tmp_path, "b")
    assert _params(headline, tmp_path, "a")["train"]["eval"]["monitor_average"] == "prompts"
    # the rows that ran before prompts became the default keep the streams monitor they ran with
    (atomic,) = quality.part_overrides(spec, rows["unigrec, atomic IDs, search loss weight 0.1"], 11).values()
    assert _params(atomic, tmp_path, "c")["train"]["eval"]["monitor_average"] == "streams"


def test_the_ml1m_1pct_best_overlay_is_the_row_that_produced_its_figures(tmp_path: Path):
    """README's one command for the ML-1M 1% figures trains exactly what the block's row trained."""
    spec = quality.load_spec(SPECS / "ml1m-1pct-headline.yaml")
    best = "unigrec, best recipe with the item layout and past actions, sampled softmax"
    (row,) = [row for row in spec.rows if row.label == best]
    (measured,) = quality.part_overrides(spec, row, 11).values()
    one_command = quality.experiment_overrides(ROOT, ["ml1m-1pct-best"]) + ["train.seed=11"]
    params = _params(one_command, tmp_path, "a")
    assert params == _params(measured, tmp_path, "b")
    assert params["split"]["holdout_window"] is None and params["train"]["model"]["event_layout"] == "item"
    assert params["train"]["retrieval_loss"]["softmax"] == "sampled"
    # the overlay's header quotes the row's figures: a re-run that moves them must move the header too
    runs = json.loads((ROOT / "benchmarks" / "results" / "ml1m-1pct-headline.json").read_text())["runs"][best]
    hr = statistics.mean(run["test"]["rec"]["full"]["hr@10"] for run in runs.values())
    header = (ROOT / "configs" / "experiments" / "ml1m-1pct-best.yaml").read_text()
    assert f"HR@10 {hr:.3f}" in header


def test_the_default_sized_for_ml1m_is_the_best_recipe_but_for_the_search_weight_the_bound_sets(tmp_path: Path):
    """What the sized default trained on ML-1M with 1% searches at 30 epochs (block "ml1m-1pct-sized-default",
    its first row) is the measured best recipe's row with the search loss weight left to
    train.max_target_weight_ratio; its 50-epoch row is today's params.yaml there; and on the sizes of ml-100k
    and ML-1M's first 600 users the default is what it trained before sizing (the small tier)."""
    from unigrec.config import load_section, resolve_auto, size_tier

    spec = quality.load_spec(SPECS / "ml1m-1pct-sized-default.yaml")
    (default,) = quality.part_overrides(spec, spec.rows[0], 11).values()
    headline = quality.load_spec(SPECS / "ml1m-1pct-headline.yaml")
    (row,) = [r for r in headline.rows if r.label == "unigrec, best recipe with the item layout and past actions, "
                                                       "sampled softmax"]
    (measured,) = quality.part_overrides(headline, row, 11).values()
    configs = []
    for name, overrides in (("default", default), ("measured", measured)):
        _params(overrides, tmp_path, name)
        configs.append(load_section("train", tmp_path / name / "params.yaml"))
    sized_default, recipe = resolve_auto(configs[0], size_tier(configs[0].sizing, 849_333)), configs[1]
    a, b = (flatten_mapping(dataclasses.asdict(c)) for c in (sized_default, recipe))
    differ = {k for k in a.keys() | b.keys() if a.get(k) != b.get(k) and not k.startswith("sizing.")}
    assert differ == {"loss_weights.retrieval_search"} and sized_default.max_target_weight_ratio == 20
    (longer,) = quality.part_overrides(spec, spec.rows[1], 11).values()
    _params(longer, tmp_path, "longer")
    today = load_section("train", ROOT / "params.yaml")  # the 50-epoch row is params.yaml's large tier
    assert load_section("train", tmp_path / "longer" / "params.yaml").trainer.max_epochs == 50
    assert resolve_auto(today, "large").trainer.max_epochs == 50 and resolve_auto(today, "small").trainer.max_epochs == 30
    # the overlays every spec names to keep its rows' training are the small tier written out as it was
    # before the weight average and the warmer softmax joined it: its sizes (small-sizes), the last step's
    # weights (last-weights) and HSTU's temperature (hstu-temperature)
    assert size_tier(configs[0].sizing, 86_486) == "small"
    pinned = flatten_mapping(_params(quality.experiment_overrides(ROOT, ["small-sizes", "last-weights",
                                                                         "hstu-temperature"]), tmp_path,
                                     "pinned")["train"])
    tier = configs[0].sizing.values("small")
    assert {key: pinned[key] for key in tier} == {**tier, "optim.ema_epochs": None, "retrieval_loss.temperature": 0.05}
    assert tier["optim.ema_epochs"] == 3.0 and tier["retrieval_loss.temperature"] == 0.1


def test_every_spec_pins_the_weights_and_temperature_its_rows_trained_with(tmp_path: Path):
    """The weight average (session 53) and the softmax temperature 0.1 (session 54) became the small tier's
    defaults after every recorded row but their own screens had run: each spec names last-weights and
    hstu-temperature, so its rows still train what they trained, and only the rows that say so average or run
    warmer (checked over every row of every spec, in both tiers, so on any data)."""
    import re

    from unigrec.config import load_section, resolve_auto

    averaging, warmer = set(), set()
    for path in sorted(SPECS.glob("*.yaml")):
        listed = re.search(r"^experiments: \[([^\]]*)\]", path.read_text(encoding="utf-8"), re.MULTILINE)
        if listed is None:
            continue  # a table of other blocks, or SASRec's rows alone
        assert {"last-weights", "hstu-temperature"} <= {e.strip() for e in listed.group(1).split(",")}, path.name
        spec = quality.load_spec(path)
        for i, row in enumerate(spec.rows):
            for part, overrides in quality.part_overrides(spec, row, 5).items():
                name = f"{path.stem}-{i}-{part}"
                _params(overrides, tmp_path, name)
                train = load_section("train", tmp_path / name / "params.yaml")
                sized = [resolve_auto(train, tier) for tier in ("small", "large")]
                if {c.optim.ema_epochs for c in sized} != {None}:
                    averaging.add(row.label)
                if {c.retrieval_loss.temperature for c in sized} != {0.05}:
                    warmer.add(row.label)
    assert averaging and all("weight EMA" in label for label in averaging), sorted(averaging)
    assert warmer and all("temperature" in label for label in warmer), sorted(warmer)


def test_issue_39s_confirmation_differs_from_plain_joint_only_in_the_enhancer_and_the_weighter(tmp_path: Path):
    """The full-recipe confirmation compares UniGRF full with plain joint training and nothing else: both
    rows of the confirm block train the ml1m-1pct-best recipe with the sampled softmax."""
    spec = quality.load_spec(SPECS / "ml1m-unigrf-confirm.yaml")
    assert spec.results == "ml1m-1pct-headline.json", "its runs are the headline block's rows"
    (plain_overrides,), (full_overrides,) = (quality.part_overrides(spec, row, 11).values() for row in spec.rows)
    plain, full = _params(plain_overrides, tmp_path, "plain"), _params(full_overrides, tmp_path, "full")
    flat_plain, flat_full = flatten_mapping(plain), flatten_mapping(full)
    differ = {k for k in flat_plain.keys() | flat_full.keys() if flat_plain.get(k) != flat_full.get(k)}
    assert differ and all(k.startswith(("train.enhancer.", "train.weighter.")) for k in differ), sorted(differ)
    assert plain["train"]["retrieval_loss"]["softmax"] == full["train"]["retrieval_loss"]["softmax"] == "sampled"
    assert full["train"]["enhancer"]["enabled"] and full["train"]["weighter"]["mode"] == "dwa"
    assert full["train"]["model"]["d_model"] == 128 and full["train"]["model"]["event_layout"] == "item"


def test_rows_fail_before_any_run_on_a_root_without_their_identifiers_or_with_other_data(tmp_path: Path):
    root = tmp_path / "root"
    root.mkdir()
    spec = quality.load_spec(SPECS / "ml1m.yaml")
    by_label = {row.label: row for row in spec.rows}
    _params(quality.experiment_overrides(ROOT, ["ml1m"]), tmp_path, "root")
    semantic = by_label["unigrec, semantic IDs (GenSAR's form)"]
    with pytest.raises(SystemExit, match=r"semantic IDs \(GenSAR's form\).*--until identifiers"):
        quality.check_rows(root, spec, [semantic])
    others = [by_label[label] for label in ("unigrec, atomic IDs (UniGRF's form)", "popularity",
                                           "TIGER-style (semantic IDs only, retrieval only)")]
    quality.check_rows(root, spec, others)  # none of them trains on the root's identifiers
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["ingest"]["queries"]["search_fraction"] = 0.01
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(SystemExit, match=r"other data params.*ingest.queries.search_fraction"):
        quality.check_rows(root, spec, others)


def test_runs_of_one_root_share_its_embeddings_but_not_their_checkpoints(tmp_path: Path):
    root = tmp_path / "root"
    cache = root / ".cache" / "unigrec"
    (cache / "train" / "checkpoints").mkdir(parents=True)
    (cache / "minilm-abc.npy").write_bytes(b"vectors")
    runs = [Layout(tmp_path / name) for name in ("a", "b")]
    for layout in runs:
        quality.link_caches(root / ".cache", layout.root / ".cache", layout.train_work_dir)
        assert (layout.root / ".cache" / "unigrec" / "minilm-abc.npy").read_bytes() == b"vectors"
        layout.train_work_dir.mkdir(parents=True)
        (layout.train_work_dir / "best.ckpt").write_text(layout.root.name)
    assert [(r.train_work_dir / "best.ckpt").read_text() for r in runs] == ["a", "b"]
    assert not (cache / "train" / "best.ckpt").exists(), "nothing is written into the root's own scratch"


def test_a_trained_part_is_reused_only_for_the_same_params_and_inputs(tmp_path: Path, monkeypatch):
    """The two-stage system's first model is not trained twice when a benchmark re-runs after its second was
    interrupted, nor a row re-scored under new evaluate params; other training params or changed input
    files train it again."""
    trained = []

    def fake_train(name: str, root: Path) -> None:  # the real stage is covered by the train stage's tests
        layout = Layout(root)
        layout.model_dir.mkdir(parents=True, exist_ok=True)
        layout.train_metrics.parent.mkdir(parents=True, exist_ok=True)
        layout.train_metrics.write_text("{}")
        trained.append(yaml.safe_load((root / "params.yaml").read_text())["train"]["seed"])

    monkeypatch.setattr(quality, "stage", fake_train)
    root = tmp_path / "root"
    Layout(root).split_dir.mkdir(parents=True)
    (Layout(root).split_dir / "events.parquet").write_bytes(b"v1")
    (root / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    for seed in (1, 1, 2):
        quality.train_part(root, tmp_path / "run", [f"train.seed={seed}"], tmp_path)
    (Layout(root).split_dir / "events.parquet").write_bytes(b"v2")
    quality.train_part(root, tmp_path / "run", ["train.seed=2"], tmp_path)
    assert trained == [1, 2, 2]
    quality.train_part(root, tmp_path / "run", ["train.seed=2", "evaluate.lexical.coverage_weights=[0.0,5.0]"], tmp_path)
    assert trained == [1, 2, 2]  # scored differently, trained alike
    quality.train_part(root, tmp_path / "run", ["train.seed=2", "train.trainer.max_epochs=3"], tmp_path)
    assert trained == [1, 2, 2, 2]


def test_the_block_says_which_rows_and_seeds_are_still_to_run_and_where_runs_trained(tmp_path: Path):
    spec = quality.load_spec(_spec(tmp_path, [{"label": "model", "seed_key": "train.seed"},
                                              {"label": "popularity", "baseline": "popularity"},
                                              {"label": "sasrec", "baseline": "sasrec", "seed_key": "x"}],
                                   seeds=[1, 2, 3]))
    here = "2 CPUs, Linux-6.18.44-fc-v782-x86_64-with-glibc2.36, torch 2.13.0+cpu (2 threads)"
    run = {"date": "2026-11-30", "seconds": 60.0, "test": {"rec": {"full": {"hr@10": 0.25}}}}
    gpu = {**run, "adopted_from": "/x", "training": {"device": "cuda: NVIDIA H200", "resumed_after_epoch": 18}}  # 0-based
    other = {**run, "machine": here.replace("v782", "v1098")}
    results = {"machine": f"{here}; 1-minute load average at start 0.3",
               "runs": {"model": {"1": gpu, "3": other}, "popularity": {"deterministic": {**run, "machine": here}}}}
    text = quality.render(spec, results)
    assert "Machine: v782 (torch threads 2); 1-minute load average at start 0.3; runs dated 2026-11-30" in text
    assert "| model | 1, 3 | 0.2500 ± 0.0000 |" in text and "Not run yet: sasrec." in text
    assert "Seeds still to run: model (2)." in text
    assert "| 1.0† |" in text and "| 1.0 |" in text, "the minutes of runs not trained here in one go are marked"
    assert quality.trained_elsewhere(spec, results) == {"model": (
        "seed 1: trained on cuda: NVIDIA H200, resumed after epoch 19, evaluated here (--adopt); seed 3: ran on v1098")
    }, "the block's own machine is not a note; the list is printed for the notes, not put in the block"
    assert "v1098" not in text and "/work" not in text.split("Commands:")[1].split("Machine:")[0]


def test_a_row_screened_on_its_own_seeds_is_run_on_them_and_owes_no_others(tmp_path: Path):
    spec = quality.load_spec(_spec(tmp_path, [{"label": "model", "seed_key": "train.seed"},
                                              {"label": "screened", "seed_key": "train.seed", "seeds": [1]},
                                              {"label": "variant", "from": "screened", "set": {"a": 1}},
                                              {"label": "wider", "from": "model", "seeds": [1, 2]}],
                                   seeds=[1, 2, 3]))
    by = {r.label: r for r in spec.rows}
    assert quality.planned_seeds(spec, by["model"]) == [1, 2, 3]
    assert quality.planned_seeds(spec, by["screened"]) == [1] == quality.planned_seeds(spec, by["variant"])
    assert quality.planned_seeds(spec, by["wider"]) == [1, 2]
    assert quality.planned_seeds(spec, by["screened"], [2, 3]) == [2, 3], "the command line's seeds come first"
    run = {"date": "2026-11-30", "seconds": 60.0, "test": {"rec": {"full": {"hr@10": 0.25}}}}
    results = {"machine": "2 CPUs", "runs": {label: {"1": run} for label in by}}
    assert "Seeds still to run: model (2, 3); wider (2)." in quality.render(spec, results)


@pytest.mark.parametrize("spec, block", [("ml1m.yaml", "ml1m-seeds"), ("ml1m-protocol.yaml", "ml1m-protocol"),
                                         ("ml100k.yaml", "compare"), ("ablation.yaml", "ablation"),
                                         ("ml1m-unigrf-ablation.yaml", "ml1m-unigrf-ablation"),
                                         ("ml1m-unigrf-confirm.yaml", "ml1m-unigrf-confirm")])
def test_each_block_re_renders_from_its_stored_results_as_benchmarks_md_holds_it(tmp_path: Path, spec, block):
    """ablation: the removed script's records (the spec's ``recorded``) until the spec's own results hold runs."""
    markdown = tmp_path / "BENCHMARKS.md"
    markdown.write_text("<!-- ablation:start -->\nold\n<!-- ablation:end -->\n")  # every block from scratch
    assert quality.main(["--spec", str(SPECS / spec), "--render", "--benchmarks-file", str(markdown)]) == 0
    assert read_block(markdown.read_text(), block) == read_block((ROOT / "BENCHMARKS.md").read_text(), block)


def test_the_published_figures_stand_beside_every_row_as_its_gap_to_unigrf():
    results = json.loads((ROOT / "benchmarks" / "results" / "ml1m-protocol.json").read_text())
    text = quality.render(quality.load_spec(SPECS / "ml1m-protocol.yaml"), results)
    headline = next(line for line in text.splitlines() if line.startswith(f"| {HEADLINE} |"))
    assert headline.endswith("| 0.6325 ± 0.0058 | 60.9† | -0.0020 | +0.0084 | +0.0059 |")
    assert "UniGRF 0.3219 / 0.1765 / 0.7932" in " ".join(text.split())


@pytest.mark.slow
def test_a_resumable_run_on_a_tiny_project(tmp_path: Path, one_torch_thread):
    layout = tiny_project(tmp_path / "project")
    spec = _spec(tmp_path, [{"label": "popularity", "baseline": "popularity"},
                            {"label": "SASRec+", "baseline": "sasrec", "seed_key": "baselines.sasrec.seed",
                             "set": {"baselines.sasrec.loss": "ce"}}])
    results, md = tmp_path / "results.json", tmp_path / "BENCHMARKS.md"
    argv = ["--root", str(layout.root), "--spec", str(spec), "--results", str(results), "--benchmarks-file", str(md)]
    assert quality.main(argv) == 0
    first = json.loads(results.read_text())
    assert set(first["runs"]["popularity"]) == {"deterministic"} and set(first["runs"]["SASRec+"]) == {"1", "2"}
    # a trained baseline's record says how its fit stopped; popularity has no fit to speak of
    assert {r["training"]["best_epoch"] <= r["training"]["epochs"] for r in first["runs"]["SASRec+"].values()} == {True}
    assert "training" not in first["runs"]["popularity"]["deterministic"]
    assert quality.main(argv) == 0
    assert json.loads(results.read_text())["runs"] == first["runs"], "finished runs are kept, not re-run"
    block = md.read_text()
    assert "| SASRec+ | 1, 2 |" in block and "| popularity | deterministic |" in block and " ± " in block


@pytest.mark.slow
def test_a_two_stage_run_trained_elsewhere_and_adopted_scores_as_one_trained_here(tmp_path: Path, one_torch_thread):
    """--export copies each part's training inputs, train_exported.sh trains both and packs what they wrote,
    and once unpacked over a fresh export --adopt scores exactly what training the system here scores."""
    layout = tiny_project(tmp_path / "project")
    spec = _spec(tmp_path, [{"label": "two-stage", "experiments": ["atomic-ids", "retrieval-only"],
                             "ranker": ["atomic-ids", "ranking-only"], "seed_key": "train.seed"}])
    here, away_results = tmp_path / "here.json", tmp_path / "away.json"
    argv = ["--root", str(layout.root), "--spec", str(spec), "--benchmarks-file", str(tmp_path / "B.md"),
            "--work", str(tmp_path / "w")]
    elsewhere, away = tmp_path / "elsewhere" / "ts", tmp_path / "back" / "ts"
    for dest in (elsewhere, away):
        assert quality.main([*argv, "--results", str(away_results), "--export", f"two-stage@1={dest}"]) == 0
    assert sorted(p.name for p in away.iterdir()) == ["ranking", "retrieval"]
    assert not any(p.is_symlink() for p in away.rglob("*")), "copies, so the folder can travel"
    assert len(list(away.glob("*/.cache/**/minilm-*.npy"))) == 2, "the query vectors travel with each part"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHON": sys.executable}
    proc = subprocess.run([str(ROOT / "benchmarks" / "train_exported.sh"), "--accelerator", "cpu", "--out", "out",
                           str(elsewhere)], check=False, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    for part in ("retrieval", "ranking"):  # a machine without the encoder's weights trains all the same
        assert "cache hit" in (tmp_path / "out" / f"ts_{part}.log").read_text()
    with tarfile.open(tmp_path / "out" / "ts.tgz") as pack:
        assert {"ts/retrieval/models/generative/model.pt", "ts/ranking/metrics/train.json"} <= set(pack.getnames())
        pack.extractall(away.parent, filter="data")
    assert quality.main([*argv, "--results", str(away_results), "--adopt", f"two-stage@1={away}"]) == 0
    assert quality.main([*argv, "--results", str(here), "--seeds", "1", "--work", str(tmp_path / "w2")]) == 0
    adopted = json.loads(away_results.read_text())["runs"]["two-stage"]["1"]
    trained_here = json.loads(here.read_text())["runs"]["two-stage"]["1"]
    assert {part: t["selected_on"] for part, t in trained_here["parts"].items()} == {
        "retrieval": "val/ndcg", "ranking": "val/ranking_auc"}, "the ranker is chosen on AUC"
    assert adopted["test"] == trained_here["test"] and adopted["adopted_from"] == str(away)
    params_file = away / "ranking" / "params.yaml"
    params_file.write_text(params_file.read_text().replace("lr: 0.003", "lr: 0.006", 1))
    with pytest.raises(SystemExit, match="optim.lr"):  # a part trained with other params is refused
        quality.main([*argv, "--results", str(away_results), "--adopt", f"two-stage@1={away}"])
    # so is one whose sizing table differs: the auto keys may have trained with other values
    params_file.write_text(params_file.read_text().replace("lr: 0.006", "lr: 0.003", 1)
                           .replace("min_lr_ratio: 0.05", "min_lr_ratio: 0.5", 1))
    with pytest.raises(SystemExit, match="sizing.large.optim.min_lr_ratio"):
        quality.main([*argv, "--results", str(away_results), "--adopt", f"two-stage@1={away}"])
    with pytest.raises(SystemExit, match="not empty"):  # an export never lands on an older one's model
        quality.main([*argv, "--results", str(away_results), "--export", f"two-stage@1={away}"])


@pytest.mark.slow
def test_tiger_builds_its_own_identifiers_once_for_all_seeds_and_reports_no_ranking(tmp_path: Path, monkeypatch,
                                                                                   one_torch_thread):
    layout = tiny_project(tmp_path / "project")
    spec = _spec(tmp_path, [{"label": "tiger", "experiments": ["tiger"], "seed_key": "train.seed"}])
    stages, run_stage = [], quality.stage
    monkeypatch.setattr(quality, "stage", lambda name, root: stages.append(name) or run_stage(name, root))
    results = tmp_path / "results.json"
    assert quality.main(["--root", str(layout.root), "--spec", str(spec), "--results", str(results),
                         "--benchmarks-file", str(tmp_path / "B.md"), "--work", str(tmp_path / "w")]) == 0
    assert stages == ["identifiers", "train", "train"], "one identifiers build serves both seeds"
    record = json.loads(results.read_text())["runs"]["tiger"]["1"]
    assert record["test"]["ranking"] == {} and record["test"]["pipeline"]["rec"]["fusion_weight"] == 0.0
    assert "ranking AUC" not in quality.aggregate({"1": record}) and "rec HR@10" in quality.aggregate({"1": record})


def test_render_never_replaces_a_block_with_nothing_nor_reads_another_scripts_results(tmp_path: Path):
    markdown = tmp_path / "BENCHMARKS.md"
    markdown.write_text("<!-- tiny:start -->\nrecorded\n<!-- tiny:end -->\n")
    argv = ["--spec", str(_spec(tmp_path, [{"label": "popularity", "baseline": "popularity"}])), "--render",
            "--benchmarks-file", str(markdown)]
    with pytest.raises(SystemExit, match="holds no runs"):
        quality.main([*argv, "--results", str(tmp_path / "none.json")])
    with pytest.raises(SystemExit, match="another script's results"):  # the removed ablation.py's records
        quality.main([*argv, "--results", str(ROOT / "benchmarks" / "results" / "ablation.json")])
    assert "recorded" in markdown.read_text()


def test_the_protocol_columns_put_the_served_search_list_and_its_slices_beside_retrieval():
    """Issue 35's blocks: a model's retrieval and served search lists on the whole test set and on the
    memorisation slices; a baseline has only its own list, so its served cells stay empty."""
    model = {"test": {"search": {"full": {"ndcg@10": 0.3}},
                      "slices": {"unseen_query": {"search": {"full": {"ndcg@10": 0.1}}}},
                      "pipeline": {"search": {"ndcg@10": 0.5, "hr@10": 0.7,
                                              "slices": {"unseen_query": {"ndcg@10": 0.4, "hr@10": 0.6}}}}}}
    baseline = {"test": {"search": {"full": {"ndcg@10": 0.35}},
                         "slices": {"unseen_query": {"search": {"full": {"ndcg@10": 0.9}}}}}}
    served = quality.aggregate({"11": model, "12": model}, "protocol")
    assert served["search NDCG@10"] == (0.3, 0.0, 2) and served["search served NDCG@10"] == (0.5, 0.0, 2)
    assert served["unseen-query NDCG@10"][0] == 0.1 and served["unseen-query served NDCG@10"][0] == 0.4
    own = quality.aggregate({"deterministic": baseline}, "protocol")
    assert own["unseen-query NDCG@10"] == (0.9, 0.0, 1)
    assert not any("served" in column for column in own), "a baseline has no served pipeline"


def test_the_unigrf_ablation_arms_are_what_their_labels_say_and_load(tmp_path: Path):
    """Issue 39's arms differ only in the softmax, the weighter and the enhancer; every arm's params pass the
    train section's checks (the enhancer feeding a full softmax is refused by name, hours into a run otherwise)."""
    from unigrec.config import load_section

    spec = quality.load_spec(SPECS / "ml1m-unigrf-ablation.yaml")
    arms, task_weights = {}, {}
    for row in spec.rows:
        for part, overrides in quality.part_overrides(spec, row, 11).items():
            params = _params(overrides, tmp_path, f"{len(arms)}-{part}")
            train = load_section("train", tmp_path / f"{len(arms)}-{part}" / "params.yaml")
            assert train.model.item_representation == "atomic" and train.model.d_model == 64
            assert train.model.event_layout == "item", "the screen runs in the default's layout"
            assert params["split"]["holdout_window"] is None, "the root of ml1m-1pct-headline"
            arms[(row.label, part)] = (train.retrieval_loss.softmax, train.weighter.mode, train.enhancer.enabled)
            task_weights[(row.label, part)] = train.loss_weights
            assert params["ingest"]["queries"]["search_fraction"] == 0.01
    assert arms[("plain joint, full softmax", "model")] == ("full", "fixed", False)
    assert arms[("plain joint, sampled softmax", "model")] == ("sampled", "fixed", False)
    assert arms[("+ weighter (two-task DWA), sampled softmax", "model")] == ("sampled", "dwa", False)
    assert arms[("+ enhancer (paper's form), sampled softmax", "model")] == ("sampled", "fixed", True)
    assert arms[("UniGRF full (enhancer + weighter), sampled softmax", "model")] == ("sampled", "dwa", True)
    assert arms[("UniGRF full, full softmax", "model")] == ("full", "dwa", True)
    # the weighter's control: plain joint with a constant ranking weight, every other arm at the base weight
    control = "plain joint, ranking weight 1.3 (the weighter's mean), sampled softmax"
    ranking_weights = {label: weights.ranking for (label, _), weights in task_weights.items()}  # a row's last part
    assert arms[(control, "model")] == ("sampled", "fixed", False)
    assert ranking_weights.pop(control) == 1.3 and set(ranking_weights.values()) == {1.0}
    # the reference: plain joint's retrieval (sampled softmax, search weight 0.1) alone, then a ranking-only model
    two_stage = "two-stage (retrieval model + ranking model)"
    assert arms[(two_stage, "retrieval")] == ("sampled", "fixed", False)
    weights = {key: dataclasses.astuple(w) for key, w in task_weights.items()}  # (rec, search, ranking)
    assert weights[(two_stage, "retrieval")] == (1.0, 0.1, 0.0)
    assert weights[(two_stage, "ranking")] == (0.0, 0.0, 1.0)
    assert weights[("plain joint, sampled softmax", "model")] == (1.0, 0.1, 1.0)


def test_welch_p_is_the_unequal_variance_t_test_by_hand():
    import math

    from scipy import stats

    a, b = [0.30, 0.32, 0.31], [0.28, 0.27, 0.29, 0.26]
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    t = (statistics.fmean(a) - statistics.fmean(b)) / math.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))  # Welch-Satterthwaite
    assert quality.welch_p(a, b) == pytest.approx(2 * stats.t.sf(abs(t), dof), rel=1e-9)
    assert quality.welch_p([0.3], b) is None and quality.welch_p([0.3, 0.3], [0.2, 0.2]) is None


def test_a_block_with_compare_to_shows_each_rows_p_value_against_the_reference(tmp_path: Path):
    spec = quality.load_spec(_spec(tmp_path, [
        {"label": "ref", "seed_key": "train.seed"}, {"label": "arm", "seed_key": "train.seed"},
    ], compare_to="ref", compare_columns=["rec NDCG@10"]))

    def run(ndcg: float) -> dict:
        return {"date": "2026-12-04", "seconds": 60.0, "test": {"rec": {"full": {"ndcg@10": ndcg}}}}

    runs = {"ref": {"1": run(0.10), "2": run(0.11), "3": run(0.12)},
            "arm": {"1": run(0.14), "2": run(0.16), "3": run(0.15)}}
    lines = quality.table(spec, runs, {})
    arm = next(line for line in lines if line.startswith("| arm |"))
    ref = next(line for line in lines if line.startswith("| ref |"))
    p = quality.welch_p([0.14, 0.16, 0.15], [0.10, 0.11, 0.12])
    assert arm.endswith(f" {p:.3f} |") and p < 0.05 and ref.endswith(" – |")
    assert any(line.startswith("p: two-sided Welch") for line in lines)
    with pytest.raises(SystemExit, match="compare_to"):
        quality.load_spec(_spec(tmp_path, [{"label": "ref"}], compare_to="nobody", compare_columns=["rec NDCG@10"]))


def test_a_cold_item_block_is_test_figures_with_its_case_counts_as_whole_numbers(tmp_path: Path):
    spec = quality.load_spec(_spec(tmp_path, [{"label": "model", "seed_key": "train.seed"}], columns="cold_items"))

    def run(ndcg: float) -> dict:
        cold = {"rec": {"n": 49, "full": {"ndcg@10": 0.0, "hr@50": 0.0}}}
        return {"date": "2026-12-04", "seconds": 60.0,
                "test": {"rec": {"full": {"ndcg@10": ndcg}}, "slices": {"target_no_train_events": cold}}}

    lines = quality.table(spec, {"model": {"1": run(0.10), "2": run(0.12)}}, {})
    assert lines[0].startswith("Test figures")
    model = next(line for line in lines if line.startswith("| model |"))
    assert model.startswith("| model | 1, 2 | 0.1100 ± 0.0141 | 49 | 0.0000 ± 0.0000 | 0.0000 ± 0.0000 |")


def test_two_processes_of_a_block_keep_each_others_runs(tmp_path: Path) -> None:
    """Each process loaded the results when it started; a run that ended since in the other is kept."""
    from benchmarks.quality import keep_run

    results_file = tmp_path / "blk.json"
    first = {"machine": "m", "runs": {"a": {"1": {"test": 1}}}}
    results_file.write_text(json.dumps(first))
    mine, theirs = json.loads(results_file.read_text()), json.loads(results_file.read_text())
    keep_run(results_file, theirs, "b", "1", {"test": 2})
    held = keep_run(results_file, mine, "a", "2", {"test": 3})
    assert held == json.loads(results_file.read_text())
    assert held["runs"] == {"a": {"1": {"test": 1}, "2": {"test": 3}}, "b": {"1": {"test": 2}}}
    assert keep_run(tmp_path / "new.json", {"machine": "m"}, "a", "1", {})["machine"] == "m"  # header kept
