"""Cold start: give items that were not in training a semantic and a collaborative ID from text alone.

How it works, and why:

* The text is embedded with the same encoder as the catalogue (all-MiniLM-L6-v2).
* A new item has no interactions, so its collaborative input is *predicted* from the text embedding by
  the ridge map fitted on warm items in the identifiers stage (the same rule the stage uses for
  catalogue items without training events). Its collaborative ID is therefore a guess of where users
  will put it, which is the best available before it has any events.
* The trained RQ-VAE encodes both inputs to codes (nearest codewords, no Sinkhorn: a handful of new
  items is not a distribution to balance).
* The dedup token is the smallest one not used by any existing item (or earlier new item in the same
  call) with the same prefix, so a new ID never collides with an existing one. If a prefix has used up
  all dedup tokens, :class:`~unigrec.ids.collisions.DedupExhausted` is raised.

The returned IDs are not written anywhere: a caller who adds the items to the catalogue should append
them to ``ids.parquet`` (or re-run the identifiers stage) so later calls see them as taken.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from unigrec.ids.artefacts import CodeLayout
from unigrec.ids.build import KINDS, quantiser_inputs
from unigrec.ids.collisions import free_dedup_tokens
from unigrec.ids.persist import load_quantiser, read_ids_table
from unigrec.paths import IdsArtefacts
from unigrec.text_encoder import embed_texts

IdPair = tuple[tuple[int, ...], tuple[int, ...]]  # (semantic_id, collaborative_id)


def assign_ids_for_texts(
    texts: list[str],
    ids_dir: Path,
    batch_size: int = 64,
    cache_dir: Path | None = None,
    show_progress: bool = False,
) -> list[IdPair]:
    """(semantic_id, collaborative_id) for each text, unique against ``ids_dir``'s existing items.

    ``ids_dir`` is the identifiers stage's output folder (``Layout.ids_dir``); ``texts`` are what the
    stage would read for an item (title + genres / description).
    """
    semantic = embed_texts(list(texts), batch_size=batch_size, cache_dir=cache_dir,
                           show_progress=show_progress)
    return assign_ids_for_embeddings(semantic, ids_dir)


@torch.no_grad()
def assign_ids_for_embeddings(semantic: np.ndarray, ids_dir: Path) -> list[IdPair]:
    """Same as :func:`assign_ids_for_texts` for already computed text embeddings ``(n, 384)``."""
    files = IdsArtefacts(Path(ids_dir))
    model, text_map, mode = load_quantiser(files.quantizer)
    layout = CodeLayout.read(files.codebooks)
    _, existing_sem, existing_col = read_ids_table(files.table)
    existing = {"semantic": existing_sem, "collaborative": existing_col}
    if len(semantic) == 0:
        return []
    inputs = quantiser_inputs(mode, semantic, text_map(semantic))
    out = model(inputs)
    ids: dict[str, np.ndarray] = {}
    for kind in KINDS:
        levels = layout.levels(kind)
        prefixes = torch.stack([out.codes[lv.name] for lv in levels[:-1]], dim=1).numpy()
        tokens = free_dedup_tokens(existing[kind], prefixes, levels[-1].size)
        ids[kind] = np.concatenate([prefixes, tokens[:, None]], axis=1)
    return [
        (tuple(int(c) for c in s), tuple(int(c) for c in c_))
        for s, c_ in zip(ids["semantic"], ids["collaborative"])
    ]
