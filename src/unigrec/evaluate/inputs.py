"""What an evaluation reads from a project: the split, its candidate lists, the catalogue, and the MiniLM
vectors of every query text (cached; computed once and shared with training)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pandas as pd

from unigrec.config import RuntimeConfig
from unigrec.paths import Layout, require_inputs


@dataclasses.dataclass(frozen=True)
class TestInputs:
    events: pd.DataFrame  # every split: held-out events need their past as context
    candidates: pd.DataFrame  # the 1+N lists of valid/test events
    items: pd.DataFrame  # the catalogue ranked against
    query_texts: Sequence[str]  # query table rows, in the order the model indexes them
    query_table: np.ndarray  # their MiniLM vectors


def load_test_inputs(runtime: RuntimeConfig, layout: Layout) -> TestInputs:
    """Read the project's evaluation data; fails naming the stage to run when a table is missing."""
    from unigrec.inference.prompts import query_table_texts
    from unigrec.text_encoder import embed_texts

    require_inputs((
        (layout.events, "split"),
        (layout.candidates, "split"),
        (layout.items, "ingest"),
    ))
    events = pd.read_parquet(layout.events)
    query_texts = query_table_texts(events)
    query_table = embed_texts(
        list(query_texts),
        batch_size=runtime.batch_sizes.text_encoding,
        cache_dir=layout.resolve(runtime.cache_dir),
        show_progress=False,
    )
    return TestInputs(
        events=events,
        candidates=pd.read_parquet(layout.candidates),
        items=pd.read_parquet(layout.items),
        query_texts=query_texts,
        query_table=query_table,
    )

