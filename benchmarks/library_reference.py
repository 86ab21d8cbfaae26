"""An independent reference on our own split: a maintained library's SASRec (torch-rechub), trained on the
split we export, its top-10 lists scored by our metric code and by the library's own.

Why: every other figure in BENCHMARKS.md comes from our own code (split, evaluation, baselines). A model
written by other people, given exactly our data and graded twice, checks the evaluation end to end: if our
SASRec+ were mis-scored, or our split leaked, a library model on the same inputs would disagree with it.

What the library model is given (the only difference from our rows is the model):

- The RECOMMENDATION stream's held-out events are the cases: one ``valid`` event per user (early stopping)
  and one ``test`` event (the figures), every one of them whatever its label, as our evaluation counts them.
- Each case's history is our leak-free context rule, computed by the very function our evaluation calls
  (:func:`unigrec.evaluate.baselines.context.held_out_cases`, :data:`unigrec.inference.prompts.CONTEXT_SPLITS`):
  a test case sees the user's earlier train, ``gap`` and valid events, a valid case earlier train and
  ``gap`` events, of BOTH streams (a search event's item is a consumption like any other; our SASRec+ reads
  it too), never the target's own item at its own timestamp.
- Training reads the ``train`` events of both streams, per user in timeline order; ``gap`` events (after a
  user's earliest held-out event, time-consistent split) are never trained on, only read as history, and
  search events are not evaluated here (an ID-only model cannot read a query).
- Both are written to parquet first (``--work``: ``train.parquet`` with each user's training items,
  ``cases.parquet`` with user, split, target, label and history) and the model reads only that export.

The model and its loss: ``torch_rechub.models.matching.SASRec`` (d 64, 2 blocks, 1 head, dropout 0.2,
contexts of the last 200 items: Kang & McAuley's ML-1M setting) trained by the library's ``MatchTrainer``
in its pair-wise mode, the one SASRec's own forward serves: BPR, ``-log sigmoid(pos - neg)`` at every
position of each user's latest training window, one negative per position drawn uniformly from items the
user never trained on (the paper draws its negative the same way but scores it with binary cross-entropy;
the library offers no BCE path for SASRec). The trainer's ``BPRLoss`` takes one score per pair, while
SASRec returns (batch, position) scores, so as shipped the two do not fit (a shape error); a thin adapter
(:class:`RealPositions`) hands the loss the scores of the real positions, padding left out as the paper
leaves it out. Sequences are right-padded because the library's user tower reads the last non-padding
position. Validation NDCG@10 picks the epoch (the library's ``EarlyStopper``, patience epochs without a gain).

Scoring: every case over the whole catalogue (``items.parquet``), the items of its history dropped, top 10
(our full-catalogue rule, :func:`unigrec.evaluate.protocols.drop_seen`). HR@10 and NDCG@10 of those lists by
our metric code (:mod:`unigrec.evaluate.metrics`) and by the library's ``topk_metrics`` (which rounds to
four decimals); the block shows both beside our own rows' stored figures for the same data.

    python benchmarks/prepare_root.py ROOT --until split
    python benchmarks/library_reference.py --root ROOT --label ml-100k --seeds 11 12 13
    python benchmarks/library_reference.py --render

The root is only read. One torch thread by default (``--threads``): the figures do not depend on it. Every
epoch leaves a checkpoint (``seed-N.pt`` beside the export): the same command run again resumes an interrupted
seed, and seeds run one a process side by side store into one run (an ML-1M seed is 1-2 hours on one thread).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import shlex
import statistics
import sys
import textwrap
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the benchmarks package, when run as a script

from benchmarks.host import add_block_arguments, command_line, machine, machine_id, portable
from benchmarks.markdown_block import write_block
from benchmarks.results_file import update_results
from unigrec.atomic import atomic_file

BLOCK = "library-reference"
NOTE = "docs/experiments/2026-12-04-library-reference.md"
LIBRARY = "torch-rechub"
STREAM = "rec"  # the stream an ID-only sequential model can answer
CUTOFF = 10  # HR@10 / NDCG@10: the cut-off of every full-catalogue row it sits beside
MONITOR = f"ndcg@{CUTOFF}"  # what early stopping maximises on the validation cases
PADDING = 0  # item index 0 pads a sequence; catalogue items are 1..n
WRAP = 110  # prose lines of the block, as the other blocks wrap them
# Our rows on the same data, read from their results files: (file, row label, what the row is). Keyed by
# --label; a label without an entry shows the library's rows alone.
OUR_ROWS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "ml-100k": (
        ("ml100k-35.json", "SASRec+ (full-softmax CE)", "our SASRec, full-softmax CE, 200 items, 40 epochs"),
        ("ml100k-atomic-epochs.json", "unigrec, atomic IDs, up to 30 epochs", "the unified model, today's default"),
        ("ml100k-35.json", "unigrec (default params)", "the unified model, dual IDs, 8 epochs (the default then)"),
        ("ml100k-35.json", "popularity", "popularity"),
    ),
    "ml1m-1pct": (  # the label benchmarks/specs/ml1m-reviewer.yaml reads
        ("ml1m-1pct-sasrec-recipes.json", "SASRec+, published recipe (early stopping)",
         "our SASRec+, full-softmax CE, d 64, 200 items, early stopping"),
        ("ml1m-1pct-past-actions.json", "unigrec (default params: item layout, past actions)",
         "the unified model, today's default"),
        ("ml1m-1pct-headline.json", "unigrec, best recipe with the item layout and past actions, sampled softmax",
         "the unified model, best recipe (sampled softmax)"),
    ),
}


# ---------------------------------------------------------------------------------------------- the export
def reference_cases(events: pd.DataFrame, split: str) -> pd.DataFrame:
    """The ``split`` events of the recommendation stream as cases: user, split, target item, label and the
    history our evaluation gives that event (item ids, oldest first), in our evaluation's case order."""
    from unigrec.evaluate.baselines.context import held_out_cases

    cases = [c for c in held_out_cases(events, split) if c.context.kind == STREAM]
    return pd.DataFrame({
        "user_id": [c.context.user_id for c in cases],
        "split": split,
        "item_id": [c.target for c in cases],
        "label": np.array([c.label for c in cases], dtype=np.int8),
        "history": [[e.item_id for e in c.context.history] for c in cases],
    })


def train_sequences(events: pd.DataFrame) -> pd.DataFrame:
    """Each user's ``train`` events of both streams in timeline order (``gap`` events excluded)."""
    train = events[events["split"] == "train"].sort_values(["user_id", "order"], kind="mergesort")
    grouped = train.groupby(train["user_id"].astype(str), sort=True)["item_id"]
    return pd.DataFrame({"user_id": list(grouped.groups), "items": [list(map(str, g)) for _, g in grouped]})


def export_split(root: Path, dest: Path) -> dict[str, str]:
    """Write ``train.parquet`` and ``cases.parquet`` (valid + test) under ``dest`` from ``root``'s split;
    returns each file's sha256, so a result names the very export it came from."""
    events = pd.read_parquet(root / "data" / "split" / "events.parquet")
    cases = pd.concat([reference_cases(events, s) for s in ("valid", "test")], ignore_index=True)
    # atomic: seeds run as separate processes side by side write the same export, and one must never read
    # another's half-written file
    for name, frame in (("train.parquet", train_sequences(events)), ("cases.parquet", cases)):
        with atomic_file(dest / name, "wb") as fh:
            frame.to_parquet(fh, index=False)
    return {name: hashlib.sha256((dest / name).read_bytes()).hexdigest() for name in ("train.parquet", "cases.parquet")}


# ---------------------------------------------------------------------------------------------- the model
def right_pad(sequences: Sequence[Sequence[int]], length: int) -> np.ndarray:
    """(len(sequences), length) int64 of each sequence's last ``length`` entries, padding behind: the
    library's SASRec reads a user at the last non-padding position."""
    out = np.full((len(sequences), length), PADDING, dtype=np.int64)
    for row, seq in enumerate(sequences):
        tail = list(seq)[-length:]
        out[row, : len(tail)] = tail
    return out


def training_windows(sequences: Sequence[Sequence[int]], max_len: int) -> tuple[np.ndarray, np.ndarray, list]:
    """Inputs and next-item targets of each user's latest ``max_len + 1`` training items (the paper's one
    window per user), and each user's trained items (what a negative must avoid)."""
    windows = [list(s)[-(max_len + 1):] for s in sequences if len(s) >= 2]
    if not windows:
        raise SystemExit("no user has two training events to learn a transition from")
    return (right_pad([w[:-1] for w in windows], max_len), right_pad([w[1:] for w in windows], max_len),
            [sorted(set(s)) for s in sequences if len(s) >= 2])


def sample_negatives(positives: np.ndarray, trained: Sequence[Sequence[int]], n_items: int,
                     rng: np.random.Generator) -> np.ndarray:
    """One item per position that the row's user never trained on (padding positions get one too: the
    adapter leaves them out of the loss)."""
    from unigrec.sasrec.training import sample_negatives as ours

    seen = torch.zeros(len(trained), n_items + 1, dtype=torch.bool)
    for row, items in enumerate(trained):
        seen[row, items] = True
    seen[:, PADDING] = True
    generator = torch.Generator().manual_seed(int(rng.integers(2**31)))
    return ours(torch.from_numpy(positives), seen, n_items, generator).numpy()


def build_model(n_items: int, cfg: argparse.Namespace) -> Any:
    """The library's SASRec over items 1..n (0 pads), its positive and negative inputs sharing one table."""
    from torch_rechub.basic.features import SequenceFeature
    from torch_rechub.models.matching import SASRec

    vocab = n_items + 1
    features = [SequenceFeature("seq", vocab, cfg.dim, pooling="concat"),
                SequenceFeature("pos", vocab, cfg.dim, pooling="concat", shared_with="seq"),
                SequenceFeature("neg", vocab, cfg.dim, pooling="concat", shared_with="seq")]
    return SASRec(features, max_len=cfg.max_len, dropout_rate=cfg.dropout, num_blocks=cfg.blocks,
                  num_heads=cfg.heads)


class RealPositions(torch.nn.Module):
    """The library's SASRec behind a module whose pair-wise output is one positive and one negative score
    per real (non-padding) position: the shape the library's ``BPRLoss`` takes."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        pos, neg = self.net(x)
        real = x["pos"] != PADDING
        return pos[real], neg[real]


def top_lists(model: Any, histories: Sequence[Sequence[int]], n_items: int, max_len: int, k: int,
              batch: int, device: str = "cpu") -> np.ndarray:
    """(cases, k) item indices (1-based) of each history's top ``k`` over the catalogue, the history's own
    items and padding dropped (our full-catalogue rule), highest score first."""
    import torch

    model.eval()
    model.mode = "user"
    table = model.item_emb.embed_dict["seq"].weight.detach()
    out = []
    with torch.no_grad():
        for start in range(0, len(histories), batch):
            rows = list(histories[start:start + batch])
            # the library squeezes the batch axis away at one row: score a lone row with a copy of itself
            seq = torch.from_numpy(right_pad(rows + rows[:1] if len(rows) == 1 else rows, max_len)).to(device)
            scores = model({"seq": seq})[: len(rows)] @ table.T
            scores[:, PADDING] = -torch.inf
            for row, history in enumerate(rows):
                scores[row, list(history)] = -torch.inf
            out.append(torch.topk(scores, k, dim=1).indices.cpu().numpy())
    model.mode = None
    return np.concatenate(out) if out else np.zeros((0, k), dtype=np.int64)


# ---------------------------------------------------------------------------------------------- metrics
def our_metrics(lists: Sequence[Sequence[str]], targets: Sequence[str], k: int) -> dict[str, float]:
    """HR@k and NDCG@k of ranked lists by our evaluation's functions (ranks, then metrics)."""
    from unigrec.evaluate.protocols import list_ranks, retrieval_metrics

    return retrieval_metrics(list_ranks(lists, targets), [k], [k], with_mrr=False)


def library_metrics(lists: Sequence[Sequence[str]], targets: Sequence[str], k: int) -> dict[str, float]:
    """HR@k and NDCG@k of the same lists by the library's ``topk_metrics`` (one relevant item per case;
    it reports strings such as ``'Hit@10: 0.1234'``, rounded to four decimals)."""
    from torch_rechub.basic.metric import topk_metrics

    truth = {case: [target] for case, target in enumerate(targets)}
    predicted = {case: list(row) for case, row in enumerate(lists)}
    found = topk_metrics(truth, predicted, topKs=[k])
    return {f"hr@{k}": float(found["Hit"][0].split(": ")[1]), f"ndcg@{k}": float(found["NDCG"][0].split(": ")[1])}


# ---------------------------------------------------------------------------------------------- training
def encode(items: Sequence[str], index: Mapping[str, int]) -> list[int]:
    return [index[i] for i in items]


def checkpoint_of(export: Path, seed: int) -> Path:
    """Where ``seed``'s per-epoch checkpoint lives: beside the export it trains on."""
    return export / f"seed-{seed}.pt"


def train_and_score(export: Path, item_ids: Sequence[str], cfg: argparse.Namespace, seed: int,
                    fingerprint: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Train the library's SASRec on the export with early stopping on validation; score the test cases.

    With a ``fingerprint`` (the run's settings and export digests) every epoch leaves a checkpoint in the
    export folder, and a seed interrupted under the same fingerprint goes on from its last epoch: an ML-1M
    seed takes one to two hours on one CPU thread, longer than a shared machine stays up for it. Every
    random state is in the checkpoint, so a resumed seed draws what an uninterrupted one would have."""
    from torch_rechub.basic.callback import EarlyStopper
    from torch_rechub.trainers import MatchTrainer
    from torch_rechub.utils.data import TorchDataset

    started = time.perf_counter()
    index = {item: i + 1 for i, item in enumerate(item_ids)}
    catalogue = np.array([""] + list(item_ids), dtype=object)
    n_items = len(item_ids)
    train = pd.read_parquet(export / "train.parquet")
    cases = pd.read_parquet(export / "cases.parquet")
    split = {s: cases[cases["split"] == s] for s in ("valid", "test")}
    histories = {s: [encode(h, index) for h in f["history"]] for s, f in split.items()}
    inputs, positives, trained = training_windows([encode(s, index) for s in train["items"]], cfg.max_len)

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = build_model(n_items, cfg)
    trainer = MatchTrainer(RealPositions(model), mode=1, optimizer_params={"lr": cfg.lr, "weight_decay": cfg.l2,
                                                             "betas": (0.9, 0.98)}, device=cfg.device)
    stopper = EarlyStopper(patience=cfg.patience)

    def lists_of(s: str) -> list[list[str]]:
        top = top_lists(model, histories[s], n_items, cfg.max_len, CUTOFF, cfg.batch_size, cfg.device)
        return [list(catalogue[row]) for row in top]

    curve: list[dict[str, Any]] = []
    spent = 0.0  # seconds of earlier, interrupted sessions of this seed
    checkpoint = checkpoint_of(export, seed) if fingerprint is not None else None
    if checkpoint is not None and checkpoint.exists():
        state = torch.load(checkpoint, weights_only=False)
        if state["fingerprint"] == fingerprint:
            model.load_state_dict(state["model"])
            trainer.optimizer.load_state_dict(state["optimizer"])
            stopper.best_auc, stopper.trial_counter = state["best"], state["trials"]
            stopper.best_weights = state["best_weights"]
            rng.bit_generator.state = state["rng"]
            torch.set_rng_state(state["torch_rng"])
            curve, spent = state["curve"], state["seconds"]
            print(f"seed {seed}: resuming after epoch {len(curve)} from {checkpoint.name}", flush=True)
    for epoch in range(len(curve), cfg.max_epochs):
        negatives = sample_negatives(positives, trained, n_items, rng)
        x = {"seq": inputs, "pos": positives, "neg": negatives}
        loader = torch.utils.data.DataLoader(
            TorchDataset(x, np.zeros(len(inputs), dtype=np.int64)), batch_size=cfg.batch_size, shuffle=True,
            generator=torch.Generator().manual_seed(int(rng.integers(2**31))),
            drop_last=len(inputs) % cfg.batch_size == 1,  # a lone row breaks the library's squeeze
        )
        loss = trainer.train_one_epoch(loader)
        valid = our_metrics(lists_of("valid"), list(split["valid"]["item_id"]), CUTOFF)[MONITOR]
        curve.append({"epoch": epoch + 1, "loss": round(loss, 5), f"valid_{MONITOR}": valid})
        print(f"seed {seed} epoch {epoch + 1}: loss {loss:.4f}, valid {MONITOR} {valid:.4f}", flush=True)
        stop = stopper.stop_training(valid, model.state_dict())
        if checkpoint is not None:
            state = {"fingerprint": fingerprint, "model": model.state_dict(),
                     "optimizer": trainer.optimizer.state_dict(), "best": stopper.best_auc,
                     "trials": stopper.trial_counter, "best_weights": stopper.best_weights,
                     "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(), "curve": curve,
                     "seconds": spent + time.perf_counter() - started}
            with atomic_file(checkpoint, "wb") as fh:
                torch.save(state, fh)
        if stop:
            break
    model.load_state_dict(stopper.best_weights)
    best = max(curve, key=lambda c: c[f"valid_{MONITOR}"])
    lists, targets = lists_of("test"), list(split["test"]["item_id"])
    return {
        "ours": our_metrics(lists, targets, CUTOFF),
        "library": library_metrics(lists, targets, CUTOFF),
        "n": len(targets),
        "best_epoch": best["epoch"],
        "epochs": len(curve),
        f"valid_{MONITOR}": best[f"valid_{MONITOR}"],
        "curve": curve,
        "seconds": round(spent + time.perf_counter() - started, 1),
        "device": cfg.device,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d"),
    }


# ---------------------------------------------------------------------------------------------- the block
def mean_std(values: Sequence[float]) -> str:
    if not values:
        return "–"
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {spread:.4f}"


def our_rows(label: str, results_dir: Path) -> list[tuple[str, str, list[float], list[float]]]:
    """(what the row is, file, HR@10 per seed, NDCG@10 per seed) of our stored rows for ``label``'s data."""
    out = []
    for name, row, what in OUR_ROWS.get(label, ()):
        path = results_dir / name
        runs = json.loads(path.read_text(encoding="utf-8")).get("runs", {}).get(row, {}) if path.exists() else {}
        full = [r["test"][STREAM]["full"] for r in runs.values() if STREAM in r.get("test", {})]
        if full:
            hr, ndcg = ([f[f"{m}@{CUTOFF}"] for f in full] for m in ("hr", "ndcg"))
            out.append((f"{what} (row {row!r})", name, hr, ndcg))
    return out


TITLE = (f"An independent reference: {LIBRARY}'s SASRec on our split, scored by our metric code and by its own "
         "(issue 38; test split)")
NOTES = (
    "The library model is given exactly what our evaluation gives every method: the same training events "
    "(train split, both streams), the same history per test case (our leak-free rule: earlier train, gap and "
    "valid events of both streams), the whole catalogue with the history's items dropped. Our rows' figures are "
    "read from their results files (their blocks name the commands); their specs made their data with the same "
    "data params as the root here. The two metric rows grade the same top-10 lists."
)


def settings_line(run: Mapping[str, Any]) -> str:
    cfg, seeds = run["settings"], run["seeds"]
    return (f"{LIBRARY} {run['library_version']} SASRec: d {cfg['dim']}, {cfg['blocks']} blocks, {cfg['heads']} "
            f"head(s), dropout {cfg['dropout']}, the last {cfg['max_len']} items, BPR with one sampled negative per "
            f"position, Adam lr {cfg['lr']}, batch {cfg['batch_size']}, up to {cfg['max_epochs']} epochs, patience "
            f"{cfg['patience']} on validation NDCG@{CUTOFF}; seeds {', '.join(seeds)}; "
            f"{next(iter(seeds.values()))['n']} recommendation test cases.")


def table(label: str, run: Mapping[str, Any], results_dir: Path) -> list[str]:
    """Mean ± std over seeds of the library model under both metric codes, then our stored rows."""
    per = list(run["seeds"].values())
    epochs = ", ".join(str(r["best_epoch"]) for r in per)
    minutes = f"{statistics.mean(r['seconds'] for r in per) / 60:.1f}"
    lines = [f"| row | rec HR@{CUTOFF} | rec NDCG@{CUTOFF} | seeds | best epochs | minutes a seed | figures from |",
             "|---|---|---|---|---|---|---|"]
    for who, title in (("ours", "our metric code"), ("library", f"{LIBRARY}'s `topk_metrics`")):
        hr = [r[who][f"hr@{CUTOFF}"] for r in per]
        ndcg = [r[who][f"ndcg@{CUTOFF}"] for r in per]
        lines.append(f"| **{LIBRARY} SASRec**, graded by {title} | {mean_std(hr)} | {mean_std(ndcg)} | {len(per)} "
                     f"| {epochs} | {minutes} | this run |")
    for row, name, hr, ndcg in our_rows(label, results_dir):
        lines.append(f"| ours: {row} | {mean_std(hr)} | {mean_std(ndcg)} | {len(hr)} | | | "
                     f"`benchmarks/results/{name}` |")
    return lines


def render(results: Mapping[str, Any], results_dir: Path) -> str:
    lines = [f"## {TITLE} (`benchmarks/library_reference.py`)", "", textwrap.fill(NOTES, WRAP), ""]
    for label, run in results.get("runs", {}).items():
        per = list(run["seeds"].values())
        gap = max(abs(r["ours"][m] - r["library"][m]) for r in per for m in r["ours"])
        dates = ", ".join(sorted({r["date"] for r in per}))
        devices = sorted({r.get("device", "cpu") for r in per})  # runs before --device trained on the CPU
        trained_on = "" if devices == ["cpu"] else f", trained on {', '.join(devices)}"
        lines += [
            f"**{label}.** Commands: `python benchmarks/prepare_root.py ROOT {run['prepare']}` (once), then  ",
            f"`{run['command']}`  ",
            (f"Machine: {machine_id(run['machine'])} (torch threads {run['machine']['torch_threads']}{trained_on}); "
             f"runs dated {dates}; [notes]({NOTE})"), "",
            textwrap.fill(settings_line(run), WRAP), "",
            *table(label, run, results_dir), "",
            textwrap.fill(f"The two metric codes differ by at most {gap:.5f} on the same lists (the library rounds "
                          f"to four decimals). Export sha256: train.parquet {run['export']['train.parquet'][:12]}, "
                          f"cases.parquet {run['export']['cases.parquet'][:12]}.", WRAP), "",
        ]
    return "\n".join(lines).rstrip("\n")


# ---------------------------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", help="prepared project root (data/split/events.parquet, data/canonical/items.parquet); "
                                  "only read")
    p.add_argument("--label", default="ml-100k",
                   help=f"the data's name in the block; picks our rows set beside it ({', '.join(OUR_ROWS)})")
    p.add_argument("--prepare", default="--until split",
                   help="the prepare_root.py options that made ROOT, for the block (default: --until split)")
    p.add_argument("--work", default=None, help="where the export goes (default: .cache/library-reference/LABEL)")
    p.add_argument("--seeds", type=int, nargs="+", default=[11, 12, 13], help="one training per seed (default: 11 12 13)")
    p.add_argument("--max-epochs", type=int, default=200, help="epoch budget (default: 200, the paper's ML-1M run)")
    p.add_argument("--patience", type=int, default=15, help="epochs without a validation gain before stopping (default: 15)")
    p.add_argument("--max-len", type=int, default=200, help="items of context (default: 200, the paper's ML-1M)")
    p.add_argument("--dim", type=int, default=64, help="embedding width (default: 64)")
    p.add_argument("--blocks", type=int, default=2, help="self-attention blocks (default: 2)")
    p.add_argument("--heads", type=int, default=1, help="attention heads (default: 1)")
    p.add_argument("--dropout", type=float, default=0.2, help="dropout (default: 0.2, the paper's ML-1M)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default: 0.001)")
    p.add_argument("--l2", type=float, default=0.0, help="Adam weight decay (default: 0)")
    p.add_argument("--batch-size", type=int, default=128, help="users a batch (default: 128)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    p.add_argument("--device", default="cpu",
                   help="where the library trains and scores: cpu (default) or cuda[:N] (ML-1M is ~40 min a seed "
                        "on 2 CPUs); the figures do not depend on it beyond run-to-run noise")
    add_block_arguments(p, str(ROOT / "benchmarks" / "results" / "library_reference.json"),
                        str(ROOT / "BENCHMARKS.md"))
    return p.parse_args(argv)


def seeds_command(command: str, seeds: Sequence[str]) -> str:
    """``command`` with its ``--seeds`` list replaced by ``seeds``: seeds trained by separate processes (one a
    CPU, side by side) share one run, and the block's command should remake all of them."""
    words = shlex.split(command)
    at = words.index("--seeds") if "--seeds" in words else len(words)
    end = at + 1
    while end < len(words) and not words[end].startswith("--"):
        end += 1
    words[at:end] = ["--seeds", *sorted(seeds, key=int)]
    return shlex.join(words)


def keep_seed(latest: dict[str, Any], label: str, header: Mapping[str, Any], seed: str,
              record: Mapping[str, Any]) -> None:
    """Store ``record`` as ``seed`` of run ``label`` in ``latest`` (the results file as it is now).

    Seeds stored under other settings or another export of the split are dropped: they do not belong in one
    mean with the new one. Seeds another process stored under the same ones are kept."""
    run = latest.setdefault("runs", {}).get(label)
    if run is None or run.get("settings") != header["settings"] or run.get("export") != header["export"]:
        run = {"seeds": {}}
    run |= header
    run["seeds"][seed] = dict(record)
    run["command"] = seeds_command(header["command"], list(run["seeds"]))
    latest["runs"][label] = run


SETTINGS = ("max_epochs", "patience", "max_len", "dim", "blocks", "heads", "dropout", "lr", "l2", "batch_size")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results_file = Path(args.results)
    results = json.loads(results_file.read_text(encoding="utf-8")) if results_file.exists() else {}
    if not args.render:
        if args.root is None:
            raise SystemExit("--root is needed to train (only --render works without one)")
        from importlib.metadata import version

        torch.set_num_threads(args.threads)
        root = Path(args.root).resolve()
        work = Path(args.work).resolve() if args.work else ROOT / ".cache" / "library-reference" / args.label
        items = pd.read_parquet(root / "data" / "canonical" / "items.parquet")["item_id"].astype(str).tolist()
        header = {"settings": {k: getattr(args, k) for k in SETTINGS}, "export": export_split(root, work),
                  "library_version": version(LIBRARY), "prepare": args.prepare, "machine": machine(),
                  "command": portable(command_line("benchmarks/library_reference.py",
                                                   sys.argv[1:] if argv is None else argv))}
        fingerprint = {k: header[k] for k in ("settings", "export")} | {"device": args.device}
        for seed in args.seeds:
            record = train_and_score(work, items, args, seed, fingerprint)
            print(f"seed {seed}: {json.dumps({k: record[k] for k in ('ours', 'library')})}")
            results = update_results(results_file,
                                     lambda latest, s=str(seed), r=record: keep_seed(latest, args.label, header, s, r))
            checkpoint_of(work, seed).unlink(missing_ok=True)  # stored: a later run of this seed starts afresh
    if not results.get("runs"):
        raise SystemExit(f"{results_file} holds no runs: nothing to render")
    block = render(results, results_file.parent)
    print(block)
    write_block(Path(args.markdown), BLOCK, block)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
