"""Property: every decoded item is a catalogue item the user has not seen, whatever the beam width.

On tiny random catalogues (atomic IDs, or dual IDs of 1-3 levels with or without a shared first level) and
random networks, with random seen sets (none, some, all but a few, all), beam widths from 1 to past the
catalogue size: the valid entries of a retrieved list are real items, unique in their row, never seen,
best first, and there are exactly min(list length, beam, unseen items) of them — seen items are kept out
of the beam, so a heavy user's list is never cut short by them.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from unigrec.inference.retrieval import decode_batch, id_spaces, retrieve_unseen
from unigrec.model.batch import collate_sequences
from unigrec.model.decoding import score_candidates
from unigrec.model.item_codes import ItemCodes, atomic_item_codes
from unigrec.model.tokenizer import EventSeq, SequenceSerialiser
from unigrec.model.transformer import GenerativeTransformer, TransformerDims
from unigrec.model.vocabulary import COLLABORATIVE, NEG, PAD, POS, SEMANTIC, Vocabulary

pytestmark = pytest.mark.usefixtures("one_torch_thread")

N_PROMPTS = 3
QUERY_DIM = 4


@st.composite
def catalogues(draw) -> tuple[ItemCodes, dict]:
    """Atomic IDs, or dual IDs with random level sizes and distinct random codes per kind."""
    if draw(st.booleans()):
        items, codebooks = atomic_item_codes([f"m{i}" for i in range(draw(st.integers(1, 12)))])
        return items, codebooks
    sizes = draw(st.lists(st.integers(2, 4), min_size=1, max_size=3))
    n_items = draw(st.integers(1, min(12, int(np.prod(sizes)))))
    shared = draw(st.booleans())
    codebooks: dict = {"mode": "dual"}
    codes = {}
    for kind in (SEMANTIC, COLLABORATIVE):
        names = [("shared_0" if shared and level == 0 else f"{kind}_{level}") for level in range(len(sizes))]
        codebooks[f"{kind}_levels"] = [{"name": n, "size": s} for n, s in zip(names, sizes, strict=True)]
        every_id = list(itertools.product(*(range(s) for s in sizes)))
        chosen = draw(st.permutations(range(len(every_id))))[:n_items]
        codes[kind] = np.array([every_id[i] for i in chosen], dtype=np.int64)
    return ItemCodes(item_ids=tuple(f"m{i}" for i in range(n_items)), codes=codes), codebooks


@st.composite
def decoding_cases(draw):
    """A random network, a batch of prompts of one stream, its ID space and the users' seen sets."""
    items, codebooks = draw(catalogues())
    vocab = Vocabulary.from_codebooks(codebooks)
    serialiser = SequenceSerialiser(vocab, items, n_query_tokens=1, max_events=4)
    seed = draw(st.integers(0, 2**16))
    torch.manual_seed(seed)
    dims = TransformerDims(vocab.size, serialiser.max_length, 16, 1, 2, 32, 0.0, QUERY_DIM, 1,
                           vocab.token(POS), vocab.token(NEG), ranking_head=codebooks["mode"] == "atomic")
    net = GenerativeTransformer(dims).eval()
    for p in net.parameters():  # a random model spreads mass everywhere, non-items included
        torch.nn.init.normal_(p, std=0.5)
    rng = np.random.default_rng(seed)
    search = draw(st.booleans())
    prompts = []
    for n in rng.integers(0, 5, size=N_PROMPTS):
        is_search = rng.random(n) < 0.5
        events = EventSeq(rng.integers(items.n_items, size=n), is_search, rng.integers(0, 2, n),
                          np.where(is_search, 0, -1))
        prompts.append(serialiser.prompt(events, search, 0 if search else -1))
    table = rng.normal(size=(1, QUERY_DIM)).astype(np.float32)
    batch = collate_sequences(prompts, table, 1, vocab.token(PAD))
    seen = torch.zeros(N_PROMPTS, items.n_items, dtype=torch.bool)
    for row in range(N_PROMPTS):
        mode = draw(st.sampled_from(["none", "some", "all but a few", "all"]))
        if mode == "some":
            chosen = draw(st.sets(st.integers(0, items.n_items - 1)))
        elif mode == "all but a few":
            spared = draw(st.sets(st.integers(0, items.n_items - 1), max_size=3))
            chosen = set(range(items.n_items)) - spared
        else:
            chosen = set(range(items.n_items)) if mode == "all" else set()
        seen[row, sorted(chosen)] = True
    return net, batch, id_spaces(vocab, items)[search], seen


def _check_unseen_list(items: torch.Tensor, scores: torch.Tensor, valid: torch.Tensor, seen: torch.Tensor,
                       length: int, beam: int) -> None:
    n_items = seen.shape[1]
    assert items.shape == scores.shape == valid.shape == (N_PROMPTS, length)
    for row in range(N_PROMPTS):
        n_valid = int(valid[row].sum())
        unseen = n_items - int(seen[row].sum())
        assert n_valid == min(length, beam, unseen), "as many unseen items as the list, the beam and the catalogue allow"
        assert valid[row, :n_valid].all(), "valid entries come first"
        kept = items[row, :n_valid]
        assert ((kept >= 0) & (kept < n_items)).all(), "only real catalogue items"
        assert len(set(kept.tolist())) == n_valid, "no item twice in one list"
        assert not seen[row, kept].any(), "never an item the user has seen"
        assert (items[row, n_valid:] == -1).all(), "the rest is padding, not a seen item"
        got = scores[row, :n_valid]
        assert torch.isfinite(got).all() and (got[:-1] >= got[1:]).all(), "best first"


@settings(max_examples=100, deadline=None)
@given(case=decoding_cases(), data=st.data())
def test_retrieved_items_are_unseen_catalogue_items_for_any_beam_width(case, data):
    net, batch, space, seen = case
    n_items = seen.shape[1]
    beam = data.draw(st.integers(1, n_items + 3), label="beam")
    k = data.draw(st.integers(1, beam + 3), label="k")
    items, scores, valid = retrieve_unseen(net, batch, space, seen, beam, k)
    _check_unseen_list(items, scores, valid, seen, k, beam)
    if space.depth == 1:  # one level: the beam is exact, the best unseen items by brute-force scoring
        everything = torch.arange(n_items).expand(N_PROMPTS, -1)
        brute, _ = score_candidates(net, batch, everything, space)
        best = brute.masked_fill(seen, float("-inf")).sort(dim=1, descending=True).values
        for row in range(N_PROMPTS):
            n_valid = int(valid[row].sum())
            torch.testing.assert_close(scores[row, :n_valid], best[row, :n_valid], rtol=1e-4, atol=1e-4)


@settings(max_examples=60, deadline=None)
@given(case=decoding_cases(), data=st.data())
def test_the_decoded_pool_is_unseen_catalogue_items_for_any_beam_and_pool_size(case, data):
    net, batch, space, seen = case
    n_items = seen.shape[1]
    beam = data.draw(st.integers(1, n_items + 3), label="beam")
    pool_k = data.draw(st.integers(1, n_items + 3), label="pool_k")
    decoded = decode_batch(net, batch, space, seen, beam, pool_k)
    width = max(beam, pool_k)  # the beam is widened to the pool
    _check_unseen_list(*(torch.as_tensor(a) for a in (decoded.items, decoded.retrieval, decoded.valid)), seen,
                       width, width)
    assert decoded.pool_ranking.shape == (N_PROMPTS, pool_k)
    for weight in (0.0, 0.5, 1.0):  # re-ranking reorders the pool, never lets anything else in
        items, _, valid = decoded.reranked_pool(weight)
        for row in range(N_PROMPTS):
            before = decoded.items[row, :pool_k][decoded.valid[row, :pool_k]]
            assert sorted(items[row][valid[row]].tolist()) == sorted(before.tolist())
