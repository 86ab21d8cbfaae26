"""Trie-constrained batched beam search and candidate scoring on top of the transformer's caches.

Scores are sums of per-level log-probabilities, each normalised over its level's code slice (the
restricted softmax the full retrieval loss trains and the sampled one estimates, on the same logits:
``GenerativeTransformer.output_logits``); the trie only masks codes that lead to no real item,
without renormalising, so a beam's score equals :func:`score_candidates`' retrieval score for that item.
"""

from __future__ import annotations

import dataclasses

import torch

from unigrec.model.batch import SequenceBatch
from unigrec.model.item_codes import ItemCodes
from unigrec.model.transformer import GenerativeTransformer, PrefixCache, TailCache
from unigrec.model.trie import PrefixTrie, build_prefix_trie
from unigrec.model.vocabulary import Vocabulary


@dataclasses.dataclass(frozen=True)
class IdSpace:
    """What decoding needs about one ID kind: level slices, the codes of every item, the trie."""

    offsets: tuple[int, ...]
    sizes: tuple[int, ...]
    codes: torch.Tensor  # (N, L) int64
    trie: PrefixTrie

    @property
    def depth(self) -> int:
        return len(self.offsets)

    def to(self, device: torch.device | str) -> IdSpace:
        return IdSpace(self.offsets, self.sizes, self.codes.to(device), self.trie.to(device))


def build_id_space(vocab: Vocabulary, items: ItemCodes, kind: str) -> IdSpace:
    levels = [vocab.level(kind, i) for i in range(vocab.n_levels(kind))]
    sizes = tuple(level.size for level in levels)
    codes = items.codes[kind]
    return IdSpace(
        offsets=tuple(level.offset for level in levels),
        sizes=sizes,
        codes=torch.as_tensor(codes, dtype=torch.long),
        trie=build_prefix_trie(codes, width=max(sizes)),
    )


def level_log_probs(net: GenerativeTransformer, hidden: torch.Tensor, space: IdSpace, level: int) -> torch.Tensor:
    """(..., width) log-softmax over the level's code slice, padded with -inf up to the trie width."""
    offset, size = space.offsets[level], space.sizes[level]
    logits = net.output_logits(hidden, net.token_table()[offset : offset + size])
    logp = torch.log_softmax(logits, dim=-1)
    pad = space.trie.width - size
    return torch.nn.functional.pad(logp, (0, pad), value=float("-inf")) if pad else logp


def exhausted_nodes(trie: PrefixTrie, exclude: torch.Tensor) -> torch.Tensor:
    """Sorted keys ``row * n_nodes + node`` of the nodes below the root whose every item ``exclude``
    (B, n_items) marks.

    A leaf is exhausted when its item is excluded; an inner node when all the items below it are. Such
    a prefix can only end in an excluded item, so a beam slot spent on it is lost. Counting works from
    the excluded items (a user's history, sparse) up their paths, never over all rows x nodes.
    """
    rows, items = exclude.nonzero(as_tuple=True)
    keys = (rows[:, None] * trie.n_nodes + trie.item_path[items]).reshape(-1)
    distinct, counts = torch.unique(keys, return_counts=True)  # sorted, as searchsorted needs
    return distinct[counts == trie.leaf_count[distinct % trie.n_nodes]]


def open_codes(trie: PrefixTrie, nodes: torch.Tensor, exhausted: torch.Tensor | None) -> torch.Tensor:
    """(B, k, width) bool: codes that extend ``nodes`` (B, k) towards an item not yet exhausted.

    Without exclusions this is the trie mask alone; with them, the children found for the exhaustion
    lookup already say which codes lead somewhere, so the trie is stepped once per level, not twice.
    """
    if exhausted is None:
        return trie.allowed(nodes)
    children = trie.step(nodes[..., None], torch.arange(trie.width, device=nodes.device))  # (B, k, width)
    real = children >= 0
    if exhausted.numel() == 0:
        return real
    rows = torch.arange(nodes.shape[0], device=nodes.device)[:, None, None]
    keys = rows * trie.n_nodes + children.clamp(min=0)
    found = exhausted[torch.searchsorted(exhausted, keys).clamp(max=exhausted.numel() - 1)] == keys
    return real & ~found


def single_level_open(trie: PrefixTrie, exclude: torch.Tensor) -> torch.Tensor:
    """(B, width) bool: the root's codes that name an item ``exclude`` (B, n_items) does not mark.

    What :func:`open_codes` gives at the root of a one-level trie (atomic IDs: each code is an item),
    without the exhaustion bookkeeping deeper tries need: a leaf is open exactly when its item is not
    excluded, so one gather answers it. A served request decodes one level only, and this is most of
    its masking cost saved."""
    device = exclude.device
    children = trie.step(torch.zeros(1, dtype=torch.long, device=device), torch.arange(trie.width, device=device))
    real = children >= 0
    return real & ~exclude[:, trie.leaf_item[children.clamp(min=0)]]


@torch.no_grad()
def beam_search(
    net: GenerativeTransformer,
    prompts: SequenceBatch,
    space: IdSpace,
    beam_size: int,
    exclude: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top ``beam_size`` items per prompt: (B, k) item indices (-1 when fewer items exist) and scores.

    The prompt is encoded once; each further level runs one token per hypothesis against the cached
    prefix, so the context is never recomputed. ``exclude`` (B, n_items) bool removes items (e.g. those
    a user has already seen) during the search, so they never take a beam slot: filtering afterwards
    would leave a heavy user with few of the ``beam_size`` items. At every level a prefix whose items
    are all excluded is pruned (with fine semantic IDs most deep prefixes hold one item, so masking
    only the last level let seen items' prefixes crowd the beam); a surviving prefix still scores
    with the mass of all its items, seen ones included, so with several levels the beam is a search
    over prefixes and not the exact top of the unseen items that it is for one-level (atomic) IDs.
    """
    hidden, prefix = net.encode_batch(prompts)
    return beam_search_encoded(net, hidden[:, -1], prefix, space, beam_size, exclude)


@torch.no_grad()
def beam_search_encoded(
    net: GenerativeTransformer,
    last_hidden: torch.Tensor,
    prefix: PrefixCache,
    space: IdSpace,
    beam_size: int,
    exclude: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`beam_search` after the prompts are encoded: ``last_hidden`` (B, d) is their last hidden
    state and ``prefix`` their cache, so a caller that also scores candidates against the same prompts
    (serving, evaluation) encodes them once for both."""
    trie = space.trie
    b = last_hidden.shape[0]
    root = torch.zeros(b, dtype=torch.long, device=last_hidden.device)
    logp = level_log_probs(net, last_hidden, space, 0)
    if exclude is not None and space.depth == 1:
        exhausted = None  # no deeper level to look up
        logp = logp.masked_fill(~single_level_open(trie, exclude), float("-inf"))
    else:
        exhausted = exhausted_nodes(trie, exclude) if exclude is not None else None
        logp = logp.masked_fill(~open_codes(trie, root[:, None], exhausted)[:, 0], float("-inf"))
    scores, codes = logp.topk(min(beam_size, trie.width), dim=-1)  # (B, k)
    nodes = trie.step(root[:, None].expand_as(codes), codes)
    nodes = nodes.masked_fill(torch.isinf(scores), -1)
    tail: TailCache | None = None
    for level in range(1, space.depth):
        k = codes.shape[1]
        tokens = (codes + space.offsets[level - 1]).reshape(b * k, 1)
        out, tail = net.extend(tokens, prefix, tail)
        logp = level_log_probs(net, out[:, -1], space, level).view(b, k, trie.width)
        logp = logp.masked_fill(~open_codes(trie, nodes, exhausted), float("-inf"))
        flat = (scores[..., None] + logp).view(b, k * trie.width)
        scores, index = flat.topk(min(beam_size, flat.shape[1]), dim=-1)
        parent = torch.div(index, trie.width, rounding_mode="floor")
        codes = index % trie.width
        nodes = trie.step(nodes.gather(1, parent), codes).masked_fill(torch.isinf(scores), -1)
        rows = (torch.arange(b, device=last_hidden.device)[:, None] * k + parent).reshape(-1)
        tail = tail.reorder(rows)
    items = torch.where(nodes >= 0, trie.leaf_item[nodes.clamp(min=0)], torch.full_like(nodes, -1))
    return items, scores


@torch.no_grad()
def score_candidates(
    net: GenerativeTransformer, prompts: SequenceBatch, candidates: torch.Tensor, space: IdSpace
) -> tuple[torch.Tensor, torch.Tensor]:
    """Retrieval score (summed code log-probs) and P(<pos>) of each candidate item, both (B, C).

    Each prompt is encoded once; all its C candidates' codes then run in one pass against the cache.
    """
    hidden, prefix = net.encode_batch(prompts)
    retrieval, ranking_logit = candidate_code_scores(net, hidden[:, -1], prefix, candidates, space)
    return retrieval, torch.sigmoid(ranking_logit)


def candidate_code_scores(
    net: GenerativeTransformer, first_hidden: torch.Tensor, prefix: PrefixCache, items: torch.Tensor, space: IdSpace
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed code log-probabilities and ranking logits of ``items`` (n, C) after an encoded context.

    ``first_hidden`` is the context's last hidden state (it predicts the first code) and ``prefix`` its
    KV cache; every candidate's codes run in one batched pass against that cache. Differentiable: the
    enhancer calls it inside training, :func:`score_candidates` under ``no_grad`` at inference. Each
    candidate's last code carries the candidate item, as in training (the hybrid form's item embedding
    joins there; it reaches the ranking logit, never a code's log-probability).
    """
    n, c = items.shape
    codes = space.codes[items]  # (n, C, L)
    scores = level_log_probs(net, first_hidden, space, 0).gather(1, codes[..., 0])
    offsets = torch.as_tensor(space.offsets, device=codes.device)
    refs = last_code_items(items, space.depth)
    out, _ = net.extend((codes + offsets).view(n * c, space.depth), prefix, item_refs=refs)
    out = out.view(n, c, space.depth, -1)
    for level in range(1, space.depth):
        logp = level_log_probs(net, out[:, :, level - 1], space, level)
        scores = scores + logp.gather(-1, codes[..., level : level + 1]).squeeze(-1)
    return scores, net.ranking_logit(out[:, :, -1])


def last_code_items(items: torch.Tensor, depth: int) -> torch.Tensor:
    """(n * C, depth) item refs of ``items`` (n, C) written as ``depth`` codes each: the item at its last
    code, -1 at the others (what the serialiser writes for an event)."""
    refs = torch.full((*items.shape, depth), -1, dtype=torch.long, device=items.device)
    refs[..., -1] = items
    return refs.view(-1, depth)
