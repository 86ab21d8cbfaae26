"""Split card: what the split stage held out and how far its searches can be answered from training.

The data card is written at ingest, before any split exists, so figures that need the split (above all
the share of held-out query strings already seen among training searches, issue 35) live here, beside
the split's own outputs (``data/split/split_card.md``); the data card points to it.
"""

from __future__ import annotations

from typing import Any

MEMORISATION_NOTE = ("A share near 100% with about one item per string means that a string -> item lookup "
                     "answers the search task: it then measures memorisation (issue 35).")
# What each figure of :func:`unigrec.data.queries.query_overlap` means, in the card's words.
QUERY_FIGURES: dict[str, str] = {
    "valid_searches": "valid search events",
    "valid_seen_in_train": "valid searches whose query string occurs among training searches",
    "valid_seen_for_target": "valid searches whose string was searched in training for the same item",
    "valid_items_per_seen_string_median": "median training items searched with a seen valid string",
    "test_searches": "test search events",
    "test_seen_in_train": "test searches whose query string occurs among training searches",
    "test_seen_for_target": "test searches whose string was searched in training for the same item",
    "test_items_per_seen_string_median": "median training items searched with a seen test string",
    "train_strings": "distinct query strings among training searches",
    "items_per_train_string": "distinct items per training query string",
    "train_strings_per_item": "distinct training query strings per searched item",
}


def _is_share(key: str) -> bool:
    return key.endswith(("_seen_in_train", "_seen_for_target")) or key == "share_one"


def _value(key: str, value: Any) -> str:
    """A figure as the card prints it: shares as percentages, nested figures on one line."""
    if isinstance(value, dict):
        return ", ".join(f"{k.replace('_', ' ')} {_value(k, v)}" for k, v in value.items())
    if value is None:
        return "–"
    return f"{value:.1%}" if _is_share(key) else str(value)


def render_split_card(summary: dict[str, Any]) -> str:
    """Markdown of the split stage's summary (``metrics/split.json``): counts, then the query overlap.

    Shares print as percentages; counts, means and medians as numbers.
    """
    lines = ["# Split card", "", "Written by the split stage; its figures are `metrics/split.json`.", "",
             "| measure | value |", "|---|---|"]
    lines += [f"| {key.replace('_', ' ')} | {_value(key, value)} |" for key, value in summary.items() if key != "queries"]
    queries = summary.get("queries")
    if queries:
        lines += ["", "## Query strings: held-out searches against training searches", "", MEMORISATION_NOTE,
                  "", "| measure | value |", "|---|---|"]
        lines += [f"| {QUERY_FIGURES.get(key, key.replace('_', ' '))} | {_value(key, value)} |"
                  for key, value in queries.items()]
    return "\n".join(lines) + "\n"
