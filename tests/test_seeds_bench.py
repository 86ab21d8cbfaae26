"""benchmarks/seeds.py: spec handling, mean ± std, the block, and a resumable run on a tiny project."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile

import pytest
import torch
import yaml
from evaluate_test_support import ROOT, evaluate_cfg, tiny_project

from benchmarks import seeds
from unigrec.paths import Layout

# the evaluate knobs of evaluate_test_support, as spec overrides (a 40-item catalogue, 1+9 lists)
TINY_EVALUATE = {
    "evaluate.sampled_hr_cutoffs": [1, 5, 10], "evaluate.sampled_ndcg_cutoffs": [5],
    "evaluate.full_hr_cutoffs": [5, 10], "evaluate.full_ndcg_cutoffs": [5, 10], "evaluate.curve_max_k": 10,
    "evaluate.beam_size": 20, "evaluate.batch_size": 8, "evaluate.pipeline_k": 10,
    "evaluate.pipeline_ndcg_cutoff": 5, "evaluate.cold_user_max_events": 14,
    "evaluate.query_cache_dir": ".cache/q",
}
TINY_SASREC = {"baselines.sasrec.max_len": 10, "baselines.sasrec.hidden": 16, "baselines.sasrec.epochs": 2,
               "baselines.sasrec.batch_size": 16}


def _spec_file(tmp_path, rows):
    spec = {"title": "Tiny", "block": "tiny-seeds", "published": "ml-1m", "seeds": [1, 2],
            "common": TINY_EVALUATE, "notes": "A tiny synthetic project.", "rows": rows}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_overrides_replace_known_keys_and_refuse_new_ones():
    base = {"train": {"seed": 1, "model": {"d_model": 8}}}
    out = seeds.with_overrides(base, {"train.model.d_model": 16, "train.seed": 5})
    assert out == {"train": {"seed": 5, "model": {"d_model": 16}}}
    assert base["train"]["model"]["d_model"] == 8, "the base is not modified"
    with pytest.raises(SystemExit, match="no such key"):
        seeds.with_overrides(base, {"train.model.d_modle": 16})


def test_a_root_prepared_before_a_knob_existed_gets_it_from_the_checkout_and_keeps_its_own_values():
    root = {"ingest": {"source": "movielens-1m"}, "train": {"seed": 3, "eval": {"k": 10}}}
    checkout = {"ingest": {"source": "embedded"}, "train": {"seed": 11, "eval": {"k": 20, "monitor_average": "x"},
                                                            "rare_task_warning_ratio": 50}}
    params, filled = seeds.root_params(root, checkout)
    assert params == {"ingest": {"source": "movielens-1m"},
                      "train": {"seed": 3, "eval": {"k": 10, "monitor_average": "x"}, "rare_task_warning_ratio": 50}}
    assert filled == ["train.eval.monitor_average", "train.rare_task_warning_ratio"]
    assert seeds.root_params(root, root) == (root, [])


def test_seed_goes_into_the_row_key_over_common_and_row_params():
    base = {"train": {"seed": 1, "max_events": 50}, "baselines": {"sasrec": {"seed": 3}}}
    spec = seeds.Spec("t", "b", None, (1, 2), {"train.max_events": 100}, (), "")
    row = seeds.Row("r", "model", {"train.max_events": 200}, "train.seed")
    assert seeds.run_params(base, spec, row, 7)["train"] == {"seed": 7, "max_events": 200}
    fixed = seeds.Row("p", "baseline", {}, None, baseline="popularity")
    assert seeds.run_seeds(fixed, [1, 2]) == [None] and seeds.run_seeds(row, [1, 2]) == [1, 2]


def test_mean_and_sample_std():
    assert seeds.mean_std([0.2, 0.4]) == pytest.approx((0.3, 0.1414213562))
    assert seeds.mean_std([0.5]) == (0.5, 0.0)
    runs = {"1": {"test": {"rec": {"full": {"hr@10": 0.2}}}}, "2": {"test": {"rec": {"full": {"hr@10": 0.4}}}}}
    stats = seeds.aggregate(runs)
    assert set(stats) == {"rec HR@10"}
    assert stats["rec HR@10"] == pytest.approx((0.3, 0.1414213562, 2))
    assert seeds.cell(stats["rec HR@10"]) == "0.3000 ± 0.1414" and seeds.cell((0.3, 0.0, 1)) == "0.3000"


def test_the_block_says_which_rows_and_seeds_are_still_to_run():
    model = seeds.Row("model", "model", {}, "train.seed")
    fixed = seeds.Row("popularity", "baseline", {}, None, baseline="popularity")
    sasrec = seeds.Row("sasrec", "baseline", {}, "baselines.sasrec.seed", baseline="sasrec")
    spec = seeds.Spec("T", "b", None, (1, 2, 3), {}, (model, fixed, sasrec), "")
    run = {"date": "2026-11-30", "seconds": 60.0, "test": {"rec": {"full": {"hr@10": 0.25}}}}
    results = {"runs": {"model": {"1": run, "3": run}, "popularity": {"deterministic": run}}}
    text = seeds.render(spec, results, "cmd")
    assert "| model | 1, 3 | 0.2500 ± 0.0000 |" in text
    assert "Not run yet: sasrec." in text
    assert "Seeds still to run: model (2)." in text, "a row short of the spec's seeds is flagged"
    assert "not trained in one go" not in text


def test_the_block_names_runs_trained_elsewhere_or_resumed():
    model = seeds.Row("model", "model", {}, "train.seed")
    spec = seeds.Spec("T", "b", None, (1, 2, 3), {}, (model,), "")
    here = {"date": "2026-11-30", "seconds": 60.0, "test": {"rec": {"full": {"hr@10": 0.25}}},
            "training": {"device": "cpu", "resumed_after_epoch": None}}
    gpu = {**here, "adopted_from": "/x", "training": {"device": "cuda: NVIDIA H200", "resumed_after_epoch": 18}}
    resumed = {**here, "training": {"resumed_after_epoch": 12}}  # a record from before devices were recorded
    text = seeds.render(spec, {"runs": {"model": {"1": resumed, "2": gpu, "3": here}}}, "cmd")
    assert ("model seed 1: resumed after epoch 12; "
            "model seed 2: trained on cuda: NVIDIA H200, resumed after epoch 18, evaluated here (--adopt).") in text
    assert "seed 3" not in text


def test_the_block_names_runs_that_ran_on_another_machine():
    model = seeds.Row("model", "model", {}, "train.seed")
    spec = seeds.Spec("T", "b", None, (1, 2, 3), {}, (model,), "")
    old = {"date": "2026-11-30", "seconds": 60.0, "test": {"rec": {"full": {"hr@10": 0.25}}}}  # kept no machine
    results = {"machine": "2 CPUs (A); 1-minute load average at start 0.3",
               "runs": {"model": {"1": old, "2": {**old, "machine": "2 CPUs (A)"},
                                  "3": {**old, "machine": "2 CPUs (B)"}, "4": {**old, "machine": "2 CPUs (B)"},
                                  "5": {**old, "machine": "2 CPUs (C)"}}}}
    text = seeds.render(spec, results, "cmd")
    assert "Machine: 2 CPUs (A); 1-minute load average at start 0.3" in text
    assert "model seed 3: ran on machine B; model seed 4: ran on machine B; model seed 5: ran on machine C." in text
    assert "Other machines: machine B: 2 CPUs (B); machine C: 2 CPUs (C)." in text, "each spelled out once"
    assert "seed 1" not in text and "seed 2" not in text, "same hardware, whatever the load"


def test_a_run_keeps_its_machine_and_the_block_keeps_the_first(tmp_path, monkeypatch):
    monkeypatch.setattr(seeds, "hardware", lambda: "2 CPUs (B)")
    monkeypatch.setattr(seeds, "machine", lambda: "2 CPUs (B); 1-minute load average at start 1.0")
    monkeypatch.setattr(seeds, "check_inputs", lambda *a: None)
    monkeypatch.setattr(seeds, "load_data", lambda *a: {})
    monkeypatch.setattr(seeds, "run_one", lambda *a: {"seconds": 1.0, "test": {"rec": {"full": {"hr@10": 0.2}}}})
    root = tmp_path / "root"
    root.mkdir()
    (root / "params.yaml").write_text("train: {seed: 0}\n")
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump({"title": "T", "block": "b", "seeds": [1],
                                         "rows": [{"label": "m", "kind": "model", "seed_key": "train.seed"}]}))
    results_file = tmp_path / "results.json"
    results_file.write_text(json.dumps({"machine": "2 CPUs (A); 1-minute load average at start 0.3", "runs": {}}))
    bench = tmp_path / "B.md"
    bench.write_text("")
    seeds.main(["--root", str(root), "--spec", str(spec_file), "--results", str(results_file),
                "--benchmarks-file", str(bench), "--work", str(tmp_path / "w")])
    saved = json.loads(results_file.read_text())
    assert saved["machine"].startswith("2 CPUs (A)"), "a later run does not rewrite the block's machine"
    assert saved["runs"]["m"]["1"]["machine"] == "2 CPUs (B)"
    assert "m seed 1: ran on machine B." in bench.read_text()
    assert "Other machines: machine B: 2 CPUs (B)." in bench.read_text()


def test_spec_rows_are_checked(tmp_path):
    with pytest.raises(SystemExit, match="kind"):
        seeds.load_spec(_spec_file(tmp_path, [{"label": "x", "kind": "magic"}]))
    with pytest.raises(SystemExit, match="names a baseline"):
        seeds.load_spec(_spec_file(tmp_path, [{"label": "x", "kind": "baseline"}]))


def test_a_probe_spec_takes_its_rows_from_another_by_label(tmp_path):
    base = _spec_file(tmp_path, [{"label": "m", "kind": "model", "seed_key": "train.seed", "params": {"a.b": 1}},
                                 {"label": "pop", "kind": "baseline", "baseline": "popularity"}])
    probe = tmp_path / "probe.yaml"
    probe.write_text(yaml.safe_dump({"title": "P", "block": "p", "seeds": [1], "rows_from": base.name,
                                     "rows": ["m", {"label": "own", "kind": "model", "seed_key": "train.seed"}]}))
    spec = seeds.load_spec(probe)
    assert spec.rows[0] == seeds.load_spec(base).rows[0] and spec.rows[1].label == "own"
    assert spec.common == TINY_EVALUATE, "common overrides come with the rows unless the probe sets its own"
    probe.write_text(yaml.safe_dump({"title": "P", "block": "p", "seeds": [1], "rows_from": base.name,
                                     "rows": [{"label": "m2", "from": "m", "params": {"c.d": 2}}]}))
    variant = seeds.load_spec(probe).rows[0]
    assert (variant.label, variant.kind, variant.seed_key) == ("m2", "model", "train.seed")
    assert variant.params == {"a.b": 1, "c.d": 2}, "a variant keeps its parent's params and adds its own"
    probe.write_text(yaml.safe_dump({"title": "P", "block": "p", "seeds": [1], "rows_from": base.name,
                                     "rows": [{"label": "m2", "from": "m", "params": {"c.d": 2}},
                                              {"label": "m3", "from": "m2", "params": {"e.f": 3}}]}))
    assert seeds.load_spec(probe).rows[1].params == {"a.b": 1, "c.d": 2, "e.f": 3}, "a variant of a variant"
    probe.write_text(yaml.safe_dump({"title": "P", "block": "p", "seeds": [1], "rows_from": base.name,
                                     "rows": [{"label": "m2", "from": "m", "seed_key": "other.seed"}]}))
    with pytest.raises(SystemExit, match="only label and params"):
        seeds.load_spec(probe)
    probe.write_text(yaml.safe_dump({"title": "P", "block": "p", "seeds": [1], "rows_from": base.name,
                                     "rows": ["nope"]}))
    with pytest.raises(SystemExit, match="not a row of rows_from"):
        seeds.load_spec(probe)


@pytest.mark.parametrize("name", ["ml1m.yaml", "ml1m-protocol.yaml"])
def test_the_shipped_ml1m_specs_name_only_real_params(name: str):
    # a mistyped key would otherwise surface hours into a benchmark, when its row's turn comes
    spec = seeds.load_spec(ROOT / "benchmarks" / "specs" / name)
    base = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert {row.kind for row in spec.rows} >= {"model", "baseline"}
    for row in spec.rows:
        for seed in seeds.run_seeds(row, spec.seeds):
            params = seeds.run_params(base, spec, row, seed)  # SystemExit on an unknown key
            if row.seed_key:
                assert seeds.dig(params, row.seed_key.split(".")) == seed


def test_rows_on_semantic_ids_fail_before_any_run_when_the_root_has_no_identifiers(tmp_path):
    # the ML-1M queue would otherwise train the atomic row for hours and then die on the semantic one
    spec = seeds.load_spec(ROOT / "benchmarks" / "specs" / "ml1m.yaml")
    base = yaml.safe_load((ROOT / "params.yaml").read_text())
    by_label = {row.label: row for row in spec.rows}
    semantic, atomic = by_label["unigrec, semantic IDs (GenSAR's form)"], by_label["unigrec, atomic IDs (UniGRF's form)"]
    tiger = by_label["TIGER-style (semantic IDs only, retrieval only)"]
    with pytest.raises(SystemExit, match=r"semantic IDs \(GenSAR's form\).*stage identifiers"):
        seeds.check_inputs(tmp_path, spec, [atomic, semantic, tiger], base)
    seeds.check_inputs(tmp_path, spec, [atomic, tiger, by_label["popularity"]], base)  # none needs data/ids
    ids = seeds.Layout(tmp_path).ids_table
    ids.parent.mkdir(parents=True)
    ids.touch()
    seeds.check_inputs(tmp_path, spec, [semantic], base)


def test_runs_of_one_root_share_its_embeddings_but_not_their_checkpoints(tmp_path):
    root = tmp_path / "root"
    cache = root / ".cache" / "unigrec"
    (cache / "train" / "checkpoints").mkdir(parents=True)
    (cache / "minilm-abc.npy").write_bytes(b"vectors")
    (root / "data" / "split").mkdir(parents=True)
    old = tmp_path / "old"  # a run folder from when the whole .cache was one link
    old.mkdir()
    (old / ".cache").symlink_to(root / ".cache")
    runs = [seeds.scratch_root(root, tmp_path / name, ("data/split",)) for name in ("a", "b", "old")]
    for layout in runs:
        assert (layout.root / ".cache" / "unigrec" / "minilm-abc.npy").read_bytes() == b"vectors"
        assert (layout.root / "data" / "split").resolve() == (root / "data" / "split").resolve()
        layout.train_work_dir.mkdir(parents=True)
        (layout.train_work_dir / "best.ckpt").write_text(layout.root.name)
    assert [(r.train_work_dir / "best.ckpt").read_text() for r in runs] == ["a", "b", "old"]
    assert not (cache / "train" / "best.ckpt").exists(), "nothing is written into the root's own scratch"


@pytest.mark.slow
def test_a_resumable_run_on_a_tiny_project(tmp_path):
    from unigrec.evaluate.evaluation import evaluate_baselines

    layout = tiny_project(tmp_path / "project")
    rows = [
        {"label": "popularity", "kind": "baseline", "baseline": "popularity"},
        {"label": "SASRec+", "kind": "baseline", "baseline": "sasrec", "seed_key": "baselines.sasrec.seed",
         "params": {**TINY_SASREC, "baselines.sasrec.loss": "ce"}},
    ]
    spec = _spec_file(tmp_path, rows)
    results, md = tmp_path / "results.json", tmp_path / "BENCHMARKS.md"
    argv = ["--root", str(layout.root), "--spec", str(spec), "--results", str(results), "--benchmarks-file", str(md)]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert seeds.main(argv) == 0
        first = json.loads(results.read_text())
        assert set(first["runs"]) == {"popularity", "SASRec+"}
        assert set(first["runs"]["popularity"]) == {"deterministic"}
        assert set(first["runs"]["SASRec+"]) == {"1", "2"}
        # the same figures the evaluate stage's own code gives the baseline
        import pandas as pd

        direct = evaluate_baselines(evaluate_cfg(sampled_hr_cutoffs=(1, 5, 10)), seeds.params_from_dict(yaml.safe_load(
            (layout.root / "params.yaml").read_text())).baselines, layout.root, pd.read_parquet(layout.events),
            pd.read_parquet(layout.candidates), pd.read_parquet(layout.items))
        assert first["runs"]["popularity"]["deterministic"]["test"]["rec"] == json.loads(json.dumps(direct["popularity"]["rec"]))
        # a second call keeps finished runs instead of training again
        assert seeds.main(argv) == 0
        assert json.loads(results.read_text())["runs"] == first["runs"]
    finally:
        torch.set_num_threads(threads)
    block = md.read_text()
    assert "<!-- tiny-seeds:start -->" in block and "| SASRec+ | 1, 2 |" in block and "| popularity | deterministic |" in block
    assert " ± " in block and "Published figures on ml-1m" in block


@pytest.mark.slow
def test_adopting_a_trained_project_checks_its_train_params(tmp_path):
    layout = tiny_project(tmp_path / "project")
    rows = [{"label": "unigrec", "kind": "model", "seed_key": "train.seed", "params": {"train.max_events": 20}}]
    spec_path = _spec_file(tmp_path, rows)
    spec = seeds.load_spec(spec_path)
    base = yaml.safe_load((layout.root / "params.yaml").read_text())
    # the tiny project's untrained model stands in for a finished train stage with the run's params
    trained = tmp_path / "project"
    run = seeds.run_params(base, spec, spec.rows[0], 11)
    (trained / "params.yaml").write_text(yaml.safe_dump(run))
    layout.train_metrics.parent.mkdir(parents=True, exist_ok=True)
    layout.train_metrics.write_text(json.dumps({"training": {"seconds": 60.0, "epochs": 1}}))
    results, md = tmp_path / "results.json", tmp_path / "BENCHMARKS.md"
    argv = ["--root", str(layout.root), "--spec", str(spec_path), "--results", str(results),
            "--benchmarks-file", str(md)]
    torch.set_num_threads(1)
    assert seeds.main([*argv, "--adopt", f"unigrec@11={trained}"]) == 0
    assert set(json.loads(results.read_text())["runs"]["unigrec"]) == {"11"}, "adopting trains nothing"
    record = json.loads(results.read_text())["runs"]["unigrec"]["11"]
    assert record["adopted_from"] == str(trained.resolve()) and record["seconds"] >= 60.0
    assert 0.0 <= record["test"]["rec"]["full"]["hr@10"] <= 1.0
    # one trained on another accelerator is the same run (the GPU-trained seeds of BENCHMARKS.md)
    (trained / "params.yaml").write_text(yaml.safe_dump(seeds.with_overrides(run, {"train.trainer.accelerator": "gpu"})))
    assert seeds.main([*argv, "--adopt", f"unigrec@11={trained}"]) == 0
    # a project trained with other train params is refused, naming the key
    (trained / "params.yaml").write_text(yaml.safe_dump(seeds.with_overrides(run, {"train.max_events": 30})))
    with pytest.raises(SystemExit, match="max_events"):
        seeds.main([*argv, "--adopt", f"unigrec@11={trained}"])


def test_a_reference_model_is_reused_only_for_the_same_params_and_inputs(tmp_path, monkeypatch):
    """The two-stage system's first model is not trained twice when a benchmark re-runs after an
    interruption; other params or changed input files train it again."""
    from benchmarks import compare
    from unigrec.stages import train

    trained = []

    def fake_train(cfg, layout):  # the real stage is covered by test_train_stage; here only the reuse rule
        layout.model_dir.mkdir(parents=True, exist_ok=True)
        trained.append(cfg.optim.lr)

    monkeypatch.setattr(train, "run", fake_train)
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    layout = Layout(tmp_path)
    layout.split_dir.mkdir(parents=True)
    (layout.split_dir / "events.parquet").write_bytes(b"v1")
    retrieval = {"loss_weights": {"ranking": 0.0}}
    for override in (retrieval, retrieval, {**retrieval, "optim": {"lr": 0.5}}):
        compare.train_reference(raw, layout, override)
    assert trained == [raw["train"]["optim"]["lr"], 0.5]
    compare.train_reference(raw, layout, {**retrieval, "optim": {"lr": 0.5}})
    (layout.split_dir / "events.parquet").write_bytes(b"v2")
    compare.train_reference(raw, layout, {**retrieval, "optim": {"lr": 0.5}})
    assert trained == [raw["train"]["optim"]["lr"], 0.5, 0.5]


@pytest.mark.slow
def test_an_exported_run_trains_on_its_own_and_comes_back_with_adopt(tmp_path):
    """The round trip of the GPU-trained seeds: --export writes a project that holds copies of everything the
    train stage reads, it trains there with no other file, and --adopt evaluates it here."""
    from unigrec.config import load_section
    from unigrec.stages import train

    layout = tiny_project(tmp_path / "project")
    rows = [{"label": "unigrec", "kind": "model", "seed_key": "train.seed",
             "params": {"train.max_events": 20, "train.trainer.max_epochs": 1, "train.query_cache_dir": ".cache/q",
                        "train.trainer.progress_bar": False}}]
    spec_path = _spec_file(tmp_path, rows)
    results, md = tmp_path / "results.json", tmp_path / "BENCHMARKS.md"
    argv = ["--root", str(layout.root), "--spec", str(spec_path), "--results", str(results),
            "--benchmarks-file", str(md)]
    away = tmp_path / "elsewhere" / "unigrec-2"
    assert seeds.main([*argv, "--export", f"unigrec@2={away}"]) == 0
    assert not results.exists(), "exporting runs nothing"
    files = sorted(p.relative_to(away).as_posix() for p in away.rglob("*") if p.is_file())
    assert all(not (away / f).is_symlink() for f in files), "copies, so the folder can travel"
    assert "params.yaml" in files and any(f.startswith(".cache/q/") for f in files), files
    run = seeds.run_params(yaml.safe_load((layout.root / "params.yaml").read_text()), seeds.load_spec(spec_path),
                           seeds.load_spec(spec_path).rows[0], 2)
    assert yaml.safe_load((away / "params.yaml").read_text()) == run
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train.run(load_section("train", away / "params.yaml"), Layout(away))
        assert seeds.main([*argv, "--adopt", f"unigrec@2={away}"]) == 0
    finally:
        torch.set_num_threads(threads)
    record = json.loads(results.read_text())["runs"]["unigrec"]["2"]
    assert record["training"]["device"] == "cpu" and record["adopted_from"] == str(away)
    with pytest.raises(SystemExit, match="LABEL@SEED=DIR"):
        seeds.main([*argv, "--export", f"unigrec@two={away}"])


@pytest.mark.slow
def test_a_reference_system_exports_one_project_per_model_and_adopts_to_the_same_result(tmp_path):
    """Two-stage trains two models: --export writes a project for each, train_exported.sh trains both and
    packs what they wrote, and once unpacked over a fresh export, --adopt scores exactly what training the
    system here scores (same seed, same CPU, one thread each)."""
    layout = tiny_project(tmp_path / "project")
    rows = [{"label": "two-stage", "kind": "system", "system": "two_stage", "seed_key": "train.seed",
             "params": {"train.max_events": 20, "train.trainer.max_epochs": 1, "train.query_cache_dir": ".cache/q",
                        "train.trainer.progress_bar": False, "train.model.item_representation": "atomic"}}]
    spec_path = _spec_file(tmp_path, rows)
    here, away_results = tmp_path / "here.json", tmp_path / "away.json"
    argv = ["--root", str(layout.root), "--spec", str(spec_path), "--benchmarks-file", str(tmp_path / "B.md")]
    elsewhere, away = tmp_path / "elsewhere" / "ts", tmp_path / "back" / "ts"
    for dest in (elsewhere, away):
        assert seeds.main([*argv, "--results", str(away_results), "--export", f"two-stage@1={dest}"]) == 0
    assert sorted(p.name for p in away.iterdir()) == ["ranking", "retrieval"]
    script = ROOT / "benchmarks" / "train_exported.sh"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHON": sys.executable}
    proc = subprocess.run([str(script), "--accelerator", "cpu", "--out", "out", str(elsewhere)], cwd=tmp_path,
                          check=False, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    with tarfile.open(tmp_path / "out" / "ts.tgz") as pack:
        packed = set(pack.getnames())
        assert {"ts/retrieval/models/generative/model.pt", "ts/ranking/metrics/train.json"} <= packed
        assert not any("/.cache/" in name for name in packed), "finished runs travel back without checkpoints"
        pack.extractall(away.parent, filter="data")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert seeds.main([*argv, "--results", str(away_results), "--adopt", f"two-stage@1={away}"]) == 0
        assert seeds.main([*argv, "--results", str(here), "--seeds", "1", "--work", str(tmp_path / "w")]) == 0
    finally:
        torch.set_num_threads(threads)
    adopted = json.loads(away_results.read_text())["runs"]["two-stage"]["1"]
    trained_here = json.loads(here.read_text())["runs"]["two-stage"]["1"]
    assert set(adopted["parts"]) == set(trained_here["parts"]) == {"retrieval", "ranking"}
    assert {part: training["selected_on"] for part, training in trained_here["parts"].items()} == {
        "retrieval": "val/ndcg", "ranking": "val/ranking_auc"}, "the ranker is chosen on AUC, and says so"
    assert adopted["test"] == trained_here["test"]
    assert adopted["adopted_from"] == str(away) and "adopted_from" not in trained_here
    # a part trained with other params is refused, naming the key
    params_file = away / "ranking" / "params.yaml"
    params = yaml.safe_load(params_file.read_text())
    params["train"]["optim"]["lr"] *= 2
    params_file.write_text(yaml.safe_dump(params))
    with pytest.raises(SystemExit, match="optim.lr"):
        seeds.main([*argv, "--results", str(away_results), "--adopt", f"two-stage@1={away}"])
    params["train"]["optim"]["lr"] /= 2
    params_file.write_text(yaml.safe_dump(params))
    # ... and so is one trained on other data than this root's
    (away / "retrieval" / "data" / "split" / "events.parquet").write_bytes(b"other data")
    with pytest.raises(SystemExit, match="events.parquet differs"):
        seeds.main([*argv, "--results", str(away_results), "--adopt", f"two-stage@1={away}"])
    with pytest.raises(SystemExit, match="not empty"):  # an export never lands on an older one's model
        seeds.main([*argv, "--results", str(away_results), "--export", f"two-stage@1={away}"])


@pytest.mark.slow
def test_tiger_exports_with_its_own_identifiers_and_reports_no_ranking(tmp_path, monkeypatch):
    """TIGER's identifiers (semantic only) are built before export, since that needs the text encoder, and
    once for all seeds of one call; its retrieval-only model has no trained ranking head, so the row carries
    no AUC rather than a coin toss."""
    from unigrec.config import load_section
    from unigrec.stages import identifiers, train

    layout = tiny_project(tmp_path / "project")
    rows = [{"label": "tiger", "kind": "system", "system": "tiger", "seed_key": "train.seed",
             "params": {"train.max_events": 20, "train.trainer.max_epochs": 1, "train.query_cache_dir": ".cache/q",
                        "train.trainer.progress_bar": False}}]
    results = tmp_path / "results.json"
    argv = ["--root", str(layout.root), "--spec", str(_spec_file(tmp_path, rows)), "--results", str(results),
            "--benchmarks-file", str(tmp_path / "B.md")]
    built = []
    build = identifiers.run
    monkeypatch.setattr(identifiers, "run", lambda cfg, layout: built.append(cfg.mode) or build(cfg, layout))
    away, other_seed = tmp_path / "away", tmp_path / "away-2"
    assert seeds.main([*argv, "--export", f"tiger@1={away}", "--export", f"tiger@2={other_seed}"]) == 0
    assert built == ["semantic_only"], "one build serves both seeds"
    project = Layout(away / "tiger")
    assert project.ids_table.exists() and not project.ids_table.is_symlink()
    assert project.ids_table.read_bytes() == Layout(other_seed / "tiger").ids_table.read_bytes()
    assert yaml.safe_load((away / "tiger" / "params.yaml").read_text())["identifiers"]["mode"] == "semantic_only"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train.run(load_section("train", away / "tiger" / "params.yaml"), project)
        assert seeds.main([*argv, "--adopt", f"tiger@1={away}"]) == 0
    finally:
        torch.set_num_threads(threads)
    record = json.loads(results.read_text())["runs"]["tiger"]["1"]
    assert list(record["parts"]) == ["tiger"] and record["test"]["ranking"] == {}
    params = yaml.safe_load((away / "tiger" / "params.yaml").read_text())
    params["identifiers"]["mode"] = "dual"  # identifiers built otherwise than TIGER's: not this run
    (away / "tiger" / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(SystemExit, match="identifiers.mode"):
        seeds.main([*argv, "--adopt", f"tiger@1={away}"])
    assert "ranking AUC" not in seeds.aggregate({"1": record}) and "rec HR@10" in seeds.aggregate({"1": record})
