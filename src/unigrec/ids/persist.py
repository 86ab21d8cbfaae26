"""Read and write the identifiers stage's artefacts (ids table, codebooks, quantiser, embeddings)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from unigrec.ids.artefacts import CodeLayout
from unigrec.ids.ridge import LinearMap
from unigrec.ids.rqvae import DualRQVAE, QuantiserShape
from unigrec.paths import IdsArtefacts

QUANTISER_FORMAT = 1  # bump when the saved dict changes shape

IDS_SCHEMA = pa.schema([
    ("item_id", pa.string()),
    ("semantic_id", pa.list_(pa.int64())),
    ("collaborative_id", pa.list_(pa.int64())),
])


def write_ids_table(path: Path, item_ids: list[str], semantic: np.ndarray, collaborative: np.ndarray) -> None:
    table = pa.table(
        {
            "item_id": pa.array(item_ids, pa.string()),
            "semantic_id": pa.array(semantic.astype(np.int64).tolist(), pa.list_(pa.int64())),
            "collaborative_id": pa.array(collaborative.astype(np.int64).tolist(), pa.list_(pa.int64())),
        },
        schema=IDS_SCHEMA,
    )
    pq.write_table(table, path)


def read_ids_table(path: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """item ids and the two ``(n, L)`` code arrays."""
    table = pq.read_table(path)
    item_ids = table.column("item_id").to_pylist()
    semantic = np.array(table.column("semantic_id").to_pylist(), dtype=np.int64)
    collaborative = np.array(table.column("collaborative_id").to_pylist(), dtype=np.int64)
    return item_ids, semantic, collaborative


def write_codebooks(path: Path, layout: CodeLayout) -> None:
    path.write_text(json.dumps(layout.to_json(), indent=2) + "\n", encoding="utf-8")


def write_item_embeddings(
    path: Path, item_ids: list[str], semantic: np.ndarray, collaborative: np.ndarray
) -> None:
    np.savez(
        path,
        item_ids=np.array(item_ids, dtype=str),
        semantic=semantic.astype(np.float32),
        collaborative=collaborative.astype(np.float32),
    )


def save_quantiser(path: Path, model: DualRQVAE, text_map: LinearMap, mode: str) -> None:
    """Weights + shape + text->collaborative map, as tensors and plain values (loadable with weights_only)."""
    shape = dataclasses.asdict(model.shape)
    shape["hidden_dims"] = list(shape["hidden_dims"])
    payload: dict[str, Any] = {
        "format": QUANTISER_FORMAT,
        "mode": mode,
        "shape": shape,
        "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "text_to_collaborative": {
            "weight": torch.from_numpy(text_map.weight),
            "bias": torch.from_numpy(text_map.bias),
        },
    }
    torch.save(payload, path)


def load_quantiser(path: Path) -> tuple[DualRQVAE, LinearMap, str]:
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if payload.get("format") != QUANTISER_FORMAT:
        raise ValueError(f"{path}: quantiser format {payload.get('format')}, expected {QUANTISER_FORMAT}")
    raw = dict(payload["shape"])
    raw["hidden_dims"] = tuple(raw["hidden_dims"])
    model = DualRQVAE(QuantiserShape(**raw))
    model.load_state_dict(payload["state_dict"])
    model.eval()
    ridge = payload["text_to_collaborative"]
    return model, LinearMap(ridge["weight"].numpy(), ridge["bias"].numpy()), payload["mode"]


def write_all(ids_dir: Path, item_ids: list[str], ids: dict[str, np.ndarray], layout: CodeLayout,
              model: DualRQVAE, text_map: LinearMap, semantic: np.ndarray, collaborative: np.ndarray) -> None:
    """Write every artefact into ``ids_dir`` (the caller makes the folder swap atomic)."""
    files = IdsArtefacts(ids_dir)
    write_ids_table(files.table, item_ids, ids["semantic"], ids["collaborative"])
    write_codebooks(files.codebooks, layout)
    save_quantiser(files.quantizer, model, text_map, layout.mode)
    write_item_embeddings(files.embeddings, item_ids, semantic, collaborative)
