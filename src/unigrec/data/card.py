"""Data card of an ingest run: where the data came from, its terms, and counts measured on the output.

Every number here is computed from the final frames, never copied from a dataset's documentation,
so the card stays true for subsets (``max_users``) and for user-supplied data.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd

from unigrec.data.sources.tables import SourceTables
from unigrec.data.timestamps import require_unix_seconds

TIE_BREAK_RULE = (
    "Events are ordered per user by a stable sort on timestamp; ties are broken by stream "
    "(recommendation events before search events) and then by the original row order of the source "
    "file, which the canonical tables preserve."
)
# The overlap of held-out and training query strings needs the split, which comes after ingest.
QUERY_OVERLAP_RULE = (
    "The share of valid and test query strings already seen among training searches (and items per "
    "string, strings per item) is measured after the split, in the split card (data/split/split_card.md) "
    "and metrics/split.json (queries)."
)


def _iso_date(seconds: int) -> str:
    return dt.datetime.fromtimestamp(int(seconds), tz=dt.UTC).date().isoformat()


def _tie_share(interactions: pd.DataFrame) -> float:
    """Share of interactions with the same (user, timestamp) as another one: how much the tie-break matters."""
    if interactions.empty:
        return 0.0
    return float(interactions.duplicated(["user_id", "timestamp"], keep=False).mean())


def measure_tables(items: pd.DataFrame, interactions: pd.DataFrame, searches: pd.DataFrame) -> dict[str, Any]:
    """Counts and ranges of the canonical tables (the ``stats`` block of the card).

    Stamps in a finer unit than seconds, from any source, fail here with the unit named: read as seconds
    they would be dates no calendar holds.
    """
    for table, frame in (("interactions", interactions), ("searches", searches)):
        require_unix_seconds(frame, table, "canonical tables")
    users = pd.concat([interactions["user_id"], searches["user_id"]]).astype(str)
    per_user = users.value_counts()
    stamps = pd.concat([interactions["timestamp"], searches["timestamp"]]).astype("int64")
    positives = int((interactions["label"] == 1).sum())
    return {
        "users": int(users.nunique()),
        "items": len(items),
        "items_with_events": int(pd.concat([interactions["item_id"], searches["item_id"]]).nunique()),
        "interactions": len(interactions),
        "searches": len(searches),
        "positives": positives,
        "label_rate": round(positives / len(interactions), 4) if len(interactions) else None,
        "unique_queries": int(searches["query"].nunique()),
        "time_range": {
            "first": _iso_date(stamps.min()) if len(stamps) else None,
            "last": _iso_date(stamps.max()) if len(stamps) else None,
        },
        "events_per_user": {
            "min": int(per_user.min()) if len(per_user) else 0,
            "median": float(np.median(per_user.to_numpy())) if len(per_user) else 0.0,
            "max": int(per_user.max()) if len(per_user) else 0,
        },
        "interactions_sharing_user_timestamp": round(_tie_share(interactions), 4),
    }


def build_data_card(
    source: SourceTables,
    items: pd.DataFrame,
    interactions: pd.DataFrame,
    searches: pd.DataFrame,
    query_rule: str,
    max_users: int | None,
) -> dict[str, Any]:
    """The card as a JSON-ready dict; ``query_rule`` says how the searches table was made."""
    return {
        "source": source.source,
        "origin": source.origin,
        "licence": source.licence,
        "files": [{"name": f.name, "sha256": f.sha256, "size_bytes": f.size_bytes} for f in source.files],
        "subset": f"first {max_users} users in sorted id order (items kept whole)" if max_users else "all users",
        "stats": measure_tables(items, interactions, searches),
        "rules": {"label": source.label_rule, "queries": query_rule, "query_overlap": QUERY_OVERLAP_RULE,
                  "tie_break": TIE_BREAK_RULE},
        "notes": list(source.notes),
    }


def render_data_card_markdown(card: dict[str, Any]) -> str:
    """Human-readable version of the card."""
    stats = card["stats"]
    lines = [
        f"# Data card: {card['source']}",
        "",
        f"**Origin:** {card['origin']}",
        "",
        f"**Licence and acknowledgement:** {card['licence']}",
        "",
        f"**Subset:** {card['subset']}",
        "",
        "## Files read",
        "",
        "| file | sha256 | bytes |",
        "|---|---|---|",
        *[f"| {f['name']} | `{f['sha256']}` | {f['size_bytes']} |" for f in card["files"]],
        "",
        "## Measured on the output tables",
        "",
        "| measure | value |",
        "|---|---|",
    ]
    for key, value in stats.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items())
        lines.append(f"| {key.replace('_', ' ')} | {value} |")
    lines += ["", "## Rules", ""]
    lines += [f"- **{name.replace('_', '-')}:** {text}" for name, text in card["rules"].items()]
    if card["notes"]:
        lines += ["", "## Notes", "", *[f"- {note}" for note in card["notes"]]]
    return "\n".join(lines) + "\n"
