"""Serve the generative model: retrieve unseen items by constrained beam search, re-rank them with the
same model's ranking head, return the registry's result rows (``request, rank, item_id, score``).

A servable folder is the train stage's model folder plus a ``serving`` bundle (catalogue titles and
text, user histories, the MiniLM vectors of history queries, decode settings) that the evaluate stage writes with
the settings it measured. :func:`load_recommender` finds the bundle inside the model folder (a
registered model) or beside it (``models/serving`` next to ``models/generative`` in a project).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from unigrec.errors import UnigrecError

log = logging.getLogger(__name__)

BUNDLE_DIR = "serving"
CATALOGUE_FILE = "catalogue.parquet"
HISTORIES_FILE = "histories.parquet"
QUERIES_FILE = "queries.npz"
SETTINGS_FILE = "settings.json"
HISTORY_COLUMNS = ("user_id", "item_id", "kind", "query", "label", "order")
KINDS = ("rec", "search")


def write_serving_bundle(
    folder: Path,
    events: pd.DataFrame,
    items: pd.DataFrame,
    query_texts: Sequence[str],
    query_vectors: np.ndarray,
    settings: Any,
) -> None:
    """Write the bundle into ``folder`` (callers make it atomic).

    ``events`` are all known events (every split: at serving time the whole past is history);
    ``settings`` is a :class:`~unigrec.inference.retrieval.DecodeSettings`. The catalogue keeps each
    item's ``text`` when the items table has it: the search pipeline's BM25 index is rebuilt from it at
    load (:mod:`unigrec.inference.lexical`).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    # text: the BM25 index; category (and the year in the text): the vocabulary typed queries are read with
    columns = ["item_id", "title", *(c for c in ("text", "category") if c in items.columns)]
    items.loc[:, columns].astype({"item_id": str}).to_parquet(folder / CATALOGUE_FILE, index=False)
    history = events.loc[:, list(HISTORY_COLUMNS)].sort_values(["user_id", "order"], kind="mergesort")
    history.to_parquet(folder / HISTORIES_FILE, index=False)
    np.savez(
        folder / QUERIES_FILE,
        texts=np.asarray(list(query_texts), dtype=object).astype(str),
        vectors=np.asarray(query_vectors, dtype=np.float32),
    )
    (folder / SETTINGS_FILE).write_text(json.dumps(dataclasses.asdict(settings), indent=2) + "\n", encoding="utf-8")


def assemble_servable_folder(model_dir: Path, serving_dir: Path, dest: Path) -> Path:
    """A self-contained copy: the model folder's files plus the bundle under ``dest/serving`` (what the
    register stage logs, so a registered model needs nothing from the project)."""
    dest = Path(dest)
    shutil.copytree(model_dir, dest, dirs_exist_ok=True)
    shutil.copytree(serving_dir, dest / BUNDLE_DIR, dirs_exist_ok=True)
    return dest


def find_bundle(model_dir: Path) -> Path:
    for candidate in (Path(model_dir) / BUNDLE_DIR, Path(model_dir).parent / BUNDLE_DIR):
        if (candidate / SETTINGS_FILE).exists():
            return candidate
    raise UnigrecError(
        f"no serving bundle in {model_dir}/{BUNDLE_DIR} nor beside it: run the evaluate stage, which writes "
        "models/serving (catalogue, user histories, decode settings)"
    )


@dataclasses.dataclass(frozen=True)
class UserHistory:
    items: np.ndarray  # dense model item indices, oldest first
    is_search: np.ndarray
    labels: np.ndarray
    queries: list[str | None]


class Recommender:
    """The registry's serving contract over one loaded model and its bundle."""

    def __init__(self, model: Any, bundle: Path, max_k: int | None = None) -> None:
        from unigrec.inference.retrieval import DecodeSettings, id_spaces

        self.model = model
        # The largest k a request may ask for (the beam widens to k, so memory grows with it): the
        # caller's limit (params serving.max_k), else the catalogue size, beyond which no k adds an item.
        self.max_k = int(max_k) if max_k is not None else int(model.items.n_items)
        self.settings = DecodeSettings.from_dict(json.loads((bundle / SETTINGS_FILE).read_text(encoding="utf-8")))
        catalogue = pd.read_parquet(bundle / CATALOGUE_FILE)
        self._titles = dict(zip(catalogue["item_id"].astype(str), catalogue["title"].fillna("").astype(str)))
        self._lexical = self._lexical_index(catalogue)
        with np.load(bundle / QUERIES_FILE) as data:
            self._query_texts = [str(t) for t in data["texts"]]
            self._query_vectors = data["vectors"].astype(np.float32)
        self._query_index = {t: i for i, t in enumerate(self._query_texts)}  # a history's queries are all here
        self._histories = self._group_histories(pd.read_parquet(bundle / HISTORIES_FILE))
        # each known user's serialised history, made at their first request (see _context)
        self._contexts: dict[str, tuple[Any, list[int]]] = {}
        # and its encoding (the transformer's keys/values), for the most recently served users: a request
        # then encodes only its own few tokens (see _encode, unigrec.inference.user_states)
        from unigrec.inference.user_states import ContextStates

        self._states = ContextStates(self.settings.cached_histories)
        self._stranger: Any = None  # the one encoding every user without history shares
        self._spaces = id_spaces(model.vocab, model.items)
        self._item_ids = np.asarray(model.items.item_ids, dtype=object)

    def _lexical_index(self, catalogue: pd.DataFrame) -> Any:
        """The BM25 index of the catalogue text in the model's item order, built once at load; None when
        no request kind has a lexical weight (the pipeline then never needs it)."""
        lexical = self.settings.lexical
        if lexical is None or not any(self.settings.lexical_for(kind).active for kind in KINDS):
            return None
        if "text" not in catalogue.columns:
            raise UnigrecError(
                "the serving bundle's settings fuse a BM25 score but its catalogue has no item text: "
                "re-run the evaluate stage, which writes both"
            )
        from unigrec.inference.lexical import catalogue_index

        return catalogue_index(self.model.items.item_ids, catalogue, lexical)

    def _group_histories(self, frame: pd.DataFrame) -> dict[str, UserHistory]:
        index = self.model.items.index()
        known = frame["item_id"].astype(str).isin(index)
        if (~known).any():
            log.warning("serving: %d history events name items the model has no ID for; ignored", int((~known).sum()))
        frame = frame[known]
        # Whole columns converted once, then cut per user: a pandas groupby with per-group conversions
        # took seconds for ml-100k's 943 users, on every CLI call and service start.
        users, first_seen = pd.factorize(frame["user_id"].astype(str))  # codes in order of first appearance
        order = np.argsort(users, kind="stable")  # each user's rows together, in their recorded order
        items = frame["item_id"].astype(str).map(index).to_numpy(np.int64)[order]
        is_search = (frame["kind"] == "search").to_numpy()[order]
        labels = frame["label"].to_numpy().astype(np.int64)[order]
        texts = frame["query"].to_numpy(dtype=object)[order]
        queries = [None if pd.isna(q) else str(q) for q in texts]
        bounds = np.concatenate([[0], np.cumsum(np.bincount(users, minlength=len(first_seen)))])
        out = {}
        for code, user in enumerate(first_seen):
            rows = slice(int(bounds[code]), int(bounds[code + 1]))
            out[str(user)] = UserHistory(items[rows], is_search[rows], labels[rows], queries[rows])
        return out

    # ------------------------------------------------------------------ lookups
    def knows_user(self, user_id: str) -> bool:
        return str(user_id) in self._histories

    def title(self, item_id: str) -> str:
        return self._titles.get(str(item_id), "")

    # ------------------------------------------------------------------ contract
    def predict(self, requests: pd.DataFrame, k: int) -> pd.DataFrame:
        """Top ``k`` items per request row, best first.

        ``score`` is the re-ranking score (1 - w)·log P(item) + w·log P(<pos>) with the kind's weight w
        from the bundle (tuned on validation by the evaluate stage; w = 0: the retrieval log-probability
        of the item's ID), plus λ·BM25/max BM25 + μ·term coverage for a kind with lexical weights λ, μ
        (BM25's best unseen items then join the candidates). A user without history gets a cold-start prompt.
        """
        from unigrec.inference.retrieval import STREAMS, stream_batches
        from unigrec.model.batch import collate_sequences
        from unigrec.model.vocabulary import PAD

        if k < 1:
            raise UnigrecError(f"k must be at least 1, not {k}")
        if k > self.max_k:
            raise UnigrecError(f"k must be at most {self.max_k} (items per request), not {k}")
        requests = requests.reset_index(drop=True)
        for column in ("user_id", "kind"):
            if column not in requests.columns:
                raise UnigrecError(f"requests need a {column!r} column")
        kinds = requests["kind"].astype(str).tolist()
        wrong = sorted(set(kinds) - set(KINDS))
        if wrong:
            raise UnigrecError(f"request kind(s) {wrong} are not one of {KINDS}")
        queries = [
            "" if "query" not in requests.columns or pd.isna(q) else str(q)
            for q in (requests["query"] if "query" in requests.columns else [None] * len(requests))
        ]
        if any(kind == "search" and not q.strip() for kind, q in zip(kinds, queries)):
            raise UnigrecError("a search request needs a non-empty query")
        texts, table = self._query_table([q for kind, q in zip(kinds, queries) if kind == "search"])
        # request queries the bundle lacks were appended after its own, so known indices never move
        new_queries = {t: len(self._query_texts) + j for j, t in enumerate(texts[len(self._query_texts):])}

        users = requests["user_id"].astype(str).tolist()
        contexts = [self._context(user) for user in users]
        suffixes = []
        for kind, query in zip(kinds, queries):
            is_search = kind == "search"
            query_index = self._query_index.get(query, new_queries.get(query, -1)) if is_search else -1
            # what the request appends to the user's history (its prompt is history + this)
            suffixes.append(self.model.serialiser.behaviour_tokens(is_search, query_index))

        rows: list[dict[str, Any]] = []
        pad = self.model.vocab.token(PAD)
        n_query_tokens = self.model.serialiser.n_query_tokens
        for is_search, chunk in stream_batches([kind == "search" for kind in kinds], self.settings.batch_size):
            encoded = self._encode(users, contexts, suffixes, chunk, lambda rows: collate_sequences(
                rows, table, n_query_tokens, pad))
            rows += self._rank(encoded, STREAMS[is_search], chunk, [contexts[i][1] for i in chunk], k,
                               [queries[i] for i in chunk])
        return _result_frame(rows)

    def _encode(
        self, users: list[str], contexts: list[tuple[Any, list[int]]], suffixes: list[Any], chunk: list[int],
        collate: Any,
    ) -> tuple[Any, Any]:
        """The last hidden states and cache of the ``chunk``'s prompts (each user's history + the request's
        own tokens), as one pass over the whole prompts gives them.

        When every user's encoded history is kept (or is the strangers' shared one), only the requests' own
        tokens run, after it (:func:`~unigrec.inference.user_states.encode_after`); a request with no tokens
        of its own decodes from the kept state with no pass at all. Otherwise the whole
        prompts run in one pass, as evaluation encodes them, and the histories' part of it is kept for next
        time (known users up to ``cached_histories``; users without history share one, so made-up ids cannot
        grow what is kept)."""
        from unigrec.inference.user_states import encode_after, encode_keeping_histories, encoded_histories

        kept = [self._states.get(users[i]) if self.knows_user(users[i]) else self._stranger for i in chunk]
        if all(state is not None for state in kept):
            if all(len(suffixes[i]) for i in chunk):
                return encode_after(self.model.net, kept, collate([suffixes[i] for i in chunk]))
            # no tokens of its own (a recommendation in the `item` event layout, where the last item predicts
            # the next): the kept history's last hidden state is the prompt's, no pass runs at all
            if not any(len(suffixes[i]) for i in chunk):
                return encoded_histories(kept)
        whole = collate([contexts[i][0].then(suffixes[i]) for i in chunk])
        last_hidden, prefix, fresh = encode_keeping_histories(self.model.net, whole, [len(contexts[i][0]) for i in chunk])
        for i, state, had in zip(chunk, fresh, kept, strict=True):
            if had is None:
                if self.knows_user(users[i]):
                    self._states.put(users[i], state)
                else:
                    self._stranger = state
        return last_hidden, prefix

    def _rank(
        self, encoded: tuple[Any, Any], kind: str, requests: list[int], seen: list[list[int]], k: int,
        queries: list[str],
    ) -> list[dict[str, Any]]:
        """The evaluated pipeline (:mod:`unigrec.inference.retrieval`) on one batch of same-kind requests,
        given encoded (:meth:`_encode`): retrieve ``max(k, pipeline_k)`` unseen items (joined by BM25's best
        unseen ones where the kind has a lexical weight), re-rank them by the kind's fused score, keep ``k``."""
        import torch

        from unigrec.inference.lexical import BM25_FEATURE, top_unseen
        from unigrec.inference.retrieval import decode_encoded, seen_mask

        weight, lexical = self.settings.weight(kind), self.settings.lexical_for(kind)
        mask = seen_mask(seen, self.model.items.n_items)
        features = extra = None
        if lexical.active and self.settings.lexical is not None:
            features = self._lexical.features(queries, coverage=lexical.coverage > 0.0)
            bm25 = features[..., BM25_FEATURE]
            extra = torch.as_tensor(top_unseen(bm25, mask.numpy(), self.settings.lexical.candidates))
        last_hidden, prefix = encoded
        decoded = decode_encoded(
            self.model.net, last_hidden, prefix, self._spaces[kind == "search"], mask,
            self.settings.beam_size, max(k, self.settings.pipeline_k), rank_pool=weight > 0.0, extra=extra,
        )
        items, scores, valid = decoded.reranked_pool(weight, features, lexical)
        out = []
        for row, request in enumerate(requests):
            kept = np.flatnonzero(valid[row])[:k]
            out += [
                {"request": request, "rank": rank, "item_id": str(self._item_ids[items[row, j]]),
                 "score": float(scores[row, j])}
                for rank, j in enumerate(kept)
            ]
        return out

    def _context(self, user: str) -> tuple[Any, list[int]]:
        """The user's serialised history (:meth:`SequenceSerialiser.context_tokens`) and the items they
        have seen. A known user's is kept: histories are fixed while a model serves, and serialising one
        was the largest part of a one-request call. An unknown user gets the empty (cold-start) context,
        never kept, so requests for made-up ids cannot grow the cache."""
        from unigrec.model.tokenizer import EventSeq

        cached = self._contexts.get(user)
        if cached is not None:
            return cached
        history = self._histories.get(user)
        if history is None:
            empty = np.zeros(0, np.int64)
            return self.model.serialiser.context_tokens(EventSeq(empty, np.zeros(0, bool), empty, empty)), []
        q_idx = np.array([-1 if q is None else self._query_index[q] for q in history.queries], dtype=np.int64)
        events = EventSeq(history.items, history.is_search, history.labels, q_idx)
        cached = self._contexts[user] = (self.model.serialiser.context_tokens(events), history.items.tolist())
        return cached

    def _query_table(self, request_queries: Sequence[str]) -> tuple[list[str], np.ndarray]:
        """History query vectors from the bundle, plus MiniLM vectors of request queries not among them
        (the encoder is only loaded when a request brings a new query)."""
        new = sorted({q for q in request_queries if q not in self._query_index})
        if not new:
            return self._query_texts, self._query_vectors
        from unigrec.text_encoder import embed_texts

        vectors = embed_texts(new, cache_dir=None, show_progress=False)
        return [*self._query_texts, *new], np.concatenate([self._query_vectors, vectors.astype(np.float32)])


def _result_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The result rows ordered by request, then rank.

    Each request's rows come from one chunk, already in rank order, so a stable sort by request alone
    gives the (request, rank) order; built from columns, not by pandas' row-wise constructor and
    two-key sort, which were most of a batch-1 call's request handling.
    """
    columns = ["request", "rank", "item_id", "score"]
    if not rows:
        return pd.DataFrame(rows, columns=columns)
    request = np.fromiter((r["request"] for r in rows), dtype=np.int64, count=len(rows))
    order = np.argsort(request, kind="stable")
    rank = np.fromiter((r["rank"] for r in rows), dtype=np.int64, count=len(rows))[order]
    item_id = np.asarray([r["item_id"] for r in rows], dtype=object)[order]
    score = np.fromiter((r["score"] for r in rows), dtype=np.float64, count=len(rows))[order]
    return pd.DataFrame({"request": request[order], "rank": rank, "item_id": item_id, "score": score})


def load_recommender(model_dir: Path, max_k: int | None = None) -> Recommender:
    """The registry's loader (params ``register.loader``): model folder -> servable :class:`Recommender`
    (``max_k``: see :attr:`Recommender.max_k`)."""
    from unigrec.model.card import load_model

    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise UnigrecError(f"model folder {model_dir} does not exist: run the train stage first")
    return Recommender(load_model(model_dir), find_bundle(model_dir), max_k)
