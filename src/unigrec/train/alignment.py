"""Query-to-ID alignment for every catalogue item: GenSAR's alignment tasks in the generative search head.

Why: the search head learns to emit an item's semantic ID only from search events that ended on that
item. An item nobody searched in training is never a target, so the head never emits it, whatever the
query says: on ml-100k's time-consistent split the model's retrieval NDCG@10 on test searches whose
target was never a training search target was 0.000 (docs/experiments/2026-12-03-issue35-protocol.md).
GenSAR trains extra tasks that map item text to the item's ID; here each catalogue item contributes a
few one-event search sequences, "query = a view of its own text, target = its semantic ID", with no
history (the mapping must hold whatever the user did before).

The views are fixed readings of the catalogue's own columns (whole text, title, genres / category
levels, genres plus decade), not draws from the query generator that writes the semi-synthetic test
searches, so the task cannot learn that generator's distribution rather than the items.

Only the alignment pass's search-retrieval loss is used (the trainer adds it, times ``weight``, to the
search-retrieval task; ``lightning_module``): an alignment event has no real action to rank.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from unigrec.config import ConfigError
from unigrec.data.queries import decade_of, genre_levels
from unigrec.data.relevance import item_years
from unigrec.model.tokenizer import EventSeq, SequenceSerialiser, TokenSequence

_Row = tuple[str, str | None, str | None, int | None]  # text, title, category, year
_View = Callable[[_Row], str]


def _genres(row: _Row) -> list[str]:
    return list(genre_levels(row[2]))


# view name -> the query it writes for one item ("" = the item lacks what the view needs)
VIEWS: dict[str, _View] = {
    "text": lambda row: row[0],
    "title": lambda row: (row[1] or "").lower(),
    "genres": lambda row: " ".join(_genres(row)),
    "genres_decade": lambda row: " ".join([*_genres(row), decade_of(row[3])]) if row[3] is not None and _genres(row)
    else "",
}


def check_views(views: Sequence[str]) -> None:
    """Refuse an unknown view by name (a misspelt one would silently train nothing)."""
    if unknown := sorted(set(views) - set(VIEWS)):
        raise ConfigError(f"train.alignment.views: unknown view(s) {', '.join(unknown)}; known: {', '.join(VIEWS)}")


def alignment_pairs(items: pd.DataFrame, views: Sequence[str]) -> list[tuple[str, str]]:
    """(item_id, query) for every item of ``items`` and every view it has the columns for, item order.

    ``items`` is the canonical items table (item_id, text, optional title / category; the year comes
    from the column or the "(1995)" in the MovieLens text, as the relevance judge reads it)."""
    check_views(views)
    blank = pd.Series([None] * len(items), index=items.index)

    def column(name: str) -> list[str | None]:
        values = items[name] if name in items.columns else blank
        return [None if pd.isna(v) else str(v) for v in values]

    rows = zip(column("text"), column("title"), column("category"), item_years(items), strict=True)
    out: list[tuple[str, str]] = []
    for item_id, row in zip(items["item_id"].astype(str), rows, strict=True):
        text_row: _Row = ("" if row[0] is None else row[0], row[1], row[2], row[3])
        queries = dict.fromkeys(q.strip() for q in (VIEWS[v](text_row) for v in views))
        out.extend((item_id, q) for q in queries if q)
    return out


def alignment_sequences(
    pairs: Sequence[tuple[int, int]], serialiser: SequenceSerialiser
) -> list[TokenSequence]:
    """One teacher-forced search sequence per (dense item index, query-table index) pair."""
    one = np.ones(1, dtype=np.int64)
    return [
        serialiser.training_sequence(
            EventSeq(np.array([item], dtype=np.int64), np.ones(1, dtype=bool), one, np.array([query], dtype=np.int64))
        )
        for item, query in pairs
    ]


def indexed_pairs(
    pairs: Sequence[tuple[str, str]], item_index: Mapping[str, int], query_index: Mapping[str, int]
) -> list[tuple[int, int]]:
    """The pairs as (dense item index, query-table index); an item the model does not know is skipped."""
    return [(item_index[i], query_index[q]) for i, q in pairs if i in item_index]
