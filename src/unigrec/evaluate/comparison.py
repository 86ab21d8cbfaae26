"""The model-vs-baselines comparison table (both protocols) as Markdown, from the metrics file alone."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from unigrec.evaluate.baselines.context import KINDS

MODEL_LABEL = "unigrec (generative)"
PROTOCOL_TITLES = {
    "sampled": "1+{n} protocol (target + {n} negatives: popularity-sampled for rec, BM25 hard negatives for search)",
    "full": "Full catalogue (constrained beam search for the model; already-seen items dropped for every method)",
}


def method_blocks(metrics: Mapping[str, Any], split: str = "test") -> dict[str, Mapping[str, Any]]:
    """Method label -> its per-stream metrics (the model first, then baselines in run order)."""
    out: dict[str, Mapping[str, Any]] = {MODEL_LABEL: metrics[split]}
    out.update(metrics.get("baselines", {}))
    return out


def _column_order(name: str) -> tuple[int, int]:
    """hr@k before ndcg@k, each by ascending k, then anything else (mrr): tables read left to right."""
    kind, _, cutoff = name.partition("@")
    rank = {"hr": 0, "ndcg": 1}.get(kind, 2)
    return rank, int(cutoff) if cutoff.isdigit() else 0


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def protocol_table(metrics: Mapping[str, Any], protocol: str) -> str:
    """One Markdown table: a row per (stream, method), a column per metric of ``protocol``.

    A method missing a stream (BM25 and dense serve search only) has no row there; the best value of
    each column within a stream is bold.
    """
    blocks = method_blocks(metrics)
    columns: list[str] = []
    for block in blocks.values():
        for stream in KINDS:
            for name in block.get(stream, {}).get(protocol, {}):
                if name not in columns:
                    columns.append(name)
    columns.sort(key=_column_order)
    lines = [
        "| stream | method | n | " + " | ".join(c.upper() if c == "mrr" else c.replace("hr", "HR").replace("ndcg", "NDCG") for c in columns) + " |",
        "|---|---|---:|" + "---:|" * len(columns),
    ]
    for stream in KINDS:
        present = {m: b[stream] for m, b in blocks.items() if stream in b and protocol in b[stream]}
        best = {c: max((v[protocol].get(c, float("-inf")) for v in present.values()), default=None) for c in columns}
        for method, values in present.items():
            cells = []
            for c in columns:
                value = values[protocol].get(c)
                text = _fmt(value) if value is not None else "–"
                cells.append(f"**{text}**" if value is not None and value == best[c] and len(present) > 1 else text)
            lines.append(f"| {stream} | {method} | {values['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def comparison_markdown(metrics: Mapping[str, Any], n_negatives: int) -> str:
    """Both protocols' tables under their titles."""
    parts = []
    for protocol, title in PROTOCOL_TITLES.items():
        parts += [f"**{title.format(n=n_negatives)}**", "", protocol_table(metrics, protocol), ""]
    return "\n".join(parts).rstrip() + "\n"


VARIANT_TITLES = {
    "as_generated": "as generated", "reordered": "words reordered", "cased": "upper / title case",
    "spelled": "other spellings", "misspelled": "one typo",
}


def relevance_markdown(metrics: Mapping[str, Any], cutoff: int) -> str:
    """Relevance of every search method's list (evaluate/relevance.py) as two tables: test searches and
    the typed-query set side by side, then P@k of the typed set per way of typing. Best per column bold."""
    blocks = {m: b["relevance"] for m, b in method_blocks(metrics).items() if "relevance" in b}
    if not blocks:
        return ""
    nd, p = f"ndcg@{cutoff}", f"p@{cutoff}"
    summary = metrics.get("typed_queries", {})

    def cells(values: list[Any]) -> list[str]:
        finite = [v for v in values if isinstance(v, float)]
        best = max(finite) if len(finite) > 1 else None
        return [("–" if v is None else f"**{_fmt(v)}**" if v == best else _fmt(v)) for v in values]

    columns = {
        "test searches NDCG": [b["test_searches"][nd] for b in blocks.values()],
        "test searches P": [b["test_searches"][p] for b in blocks.values()],
        "typed NDCG": [b["typed_queries"]["all"][nd] for b in blocks.values()],
        "typed P": [b["typed_queries"]["all"][p] for b in blocks.values()],
        "unseen forms P": [b["typed_queries"]["unseen_forms"][p] for b in blocks.values()],
    }
    first = next(iter(blocks.values()))
    lines = [
        (f"Test searches: {first['test_searches']['n']}. Typed-query set: {summary.get('forms', 0)} query forms "
         f"({summary.get('unseen_forms', 0)} never a training search), {summary.get('requests', 0)} typed requests "
         f"for {summary.get('users', 0)} users."),
        "",
        (f"| method | test searches NDCG@{cutoff} | test searches P@{cutoff} | typed NDCG@{cutoff} | typed P@{cutoff} "
         f"| unseen forms P@{cutoff} |"),
        "|---|---:|---:|---:|---:|---:|",
    ]
    rendered = {name: cells(values) for name, values in columns.items()}
    for row, method in enumerate(blocks):
        lines.append(f"| {method} | " + " | ".join(rendered[name][row] for name in columns) + " |")
    by_variant = first["typed_queries"]["by_variant"]  # the metrics file sorts keys: show them in typing order
    variants = [v for v in VARIANT_TITLES if v in by_variant] + [v for v in by_variant if v not in VARIANT_TITLES]
    lines += [
        "",
        f"Typed-query set, P@{cutoff} by how the query was typed (requests per way: "
        + ", ".join(f"{VARIANT_TITLES.get(v, v)} {first['typed_queries']['by_variant'][v]['n']}" for v in variants)
        + "):",
        "",
        "| method | " + " | ".join(VARIANT_TITLES.get(v, v) for v in variants) + " |",
        "|---|" + "---:|" * len(variants),
    ]
    per_variant = [cells([b["typed_queries"]["by_variant"][v][p] for b in blocks.values()]) for v in variants]
    for row, method in enumerate(blocks):
        lines.append(f"| {method} | " + " | ".join(column[row] for column in per_variant) + " |")
    return "\n".join(lines) + "\n"
