"""Each known user's encoded history, kept while a model serves, so a request encodes only what it appends.

Why: a served prompt is the user's history (``SequenceSerialiser.context_tokens``) followed by the request's
behaviour prefix (a task token, and the query's soft tokens for a search). Histories are fixed while a model
serves, and under causal attention the keys and values of the history do not depend on anything after it,
so they can be computed once per user and reused: a request then runs its few prefix tokens against the
stored history (:meth:`GenerativeTransformer.extend <unigrec.model.transformer.GenerativeTransformer.extend>`)
instead of one pass over the whole prompt, which was a third of a one-request call and the part batching
could not cheapen on a CPU. A user's first request is encoded in one pass over the whole prompt, as
evaluation does, and the history's part of that pass is what is kept (:func:`encode_keeping_histories`).
The result is the same attention over the same keys, values and positions as one pass over the whole
prompt (equal up to float summation order: tested).

Memory is what this trades: per user ``2 x layers x length x d_model`` floats (~0.2 MB for ml-100k's
default model at 50 events), so :class:`ContextStates` keeps at most ``runtime.cached_histories`` users,
least recently served out first. Not thread-safe: the service decodes one request batch at a time.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Sequence

import torch

from unigrec.model.batch import SequenceBatch
from unigrec.model.transformer import GenerativeTransformer, PrefixCache


@dataclasses.dataclass(frozen=True)
class EncodedContext:
    """One history's keys and values, per layer (heads, length, head_dim): the real tokens only."""

    keys: tuple[torch.Tensor, ...]
    values: tuple[torch.Tensor, ...]
    # the action at the history's last token (-1: none, or no history), what the request's first token reads
    # as its past action (train.model.past_action_input): the one input a request's tokens take from the
    # history other than its keys and values
    last_action: int = -1
    # (d,) the final hidden state at the history's last token: a request with no tokens of its own (a
    # recommendation in the `item` layout, where the last item predicts the next) decodes from it and the keys
    # and values alone, with no pass at all
    last_hidden: torch.Tensor | None = None

    @property
    def length(self) -> int:
        return int(self.keys[0].shape[1])

    @property
    def nbytes(self) -> int:
        extra = () if self.last_hidden is None else (self.last_hidden,)
        return sum(t.numel() * t.element_size() for t in (*self.keys, *self.values, *extra))


class ContextStates:
    """At most ``capacity`` users' :class:`EncodedContext`, the least recently used dropped first
    (``capacity`` 0 keeps none: every request encodes its history again)."""

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, not {capacity}")
        self.capacity = capacity
        self._states: collections.OrderedDict[str, EncodedContext] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._states)

    def get(self, user: str) -> EncodedContext | None:
        state = self._states.get(user)
        if state is not None:
            self._states.move_to_end(user)
        return state

    def put(self, user: str, state: EncodedContext) -> None:
        if self.capacity == 0:
            return
        self._states[user] = state
        self._states.move_to_end(user)
        while len(self._states) > self.capacity:
            self._states.popitem(last=False)


@torch.no_grad()
def encode_keeping_histories(
    net: GenerativeTransformer, prompts: SequenceBatch, history_lengths: Sequence[int]
) -> tuple[torch.Tensor, PrefixCache, list[EncodedContext]]:
    """One pass over whole (left-padded) prompts, as evaluation encodes them: each row's last hidden state,
    the cache, and each row's history part of that cache (its first ``history_lengths[row]`` real tokens) to
    keep. Under causal attention that part is exactly what encoding the history alone would give, so a
    user's first request costs one pass, as without keeping, and later ones only their own tokens. Copies:
    a kept state does not hold the whole batch's tensors alive."""
    hidden, cache = net.encode_batch(prompts)
    width = prompts.tokens.shape[1]
    states = []
    for row, (length, history) in enumerate(zip(prompts.valid.sum(1).tolist(), history_lengths, strict=True)):
        if history > length:
            raise ValueError(f"row {row}: a history of {history} tokens in a prompt of {length}")
        part = slice(width - int(length), width - int(length) + int(history))
        last = int(prompts.actions[row, part.stop - 1]) if history else -1
        states.append(EncodedContext(tuple(k[row, :, part].clone() for k in cache.keys),
                                     tuple(v[row, :, part].clone() for v in cache.values), last,
                                     hidden[row, part.stop - 1].clone() if history else None))
    return hidden[:, -1], cache, states


def stack_contexts(states: Sequence[EncodedContext]) -> PrefixCache:
    """The histories as one left-padded :class:`PrefixCache` (what :meth:`GenerativeTransformer.encode`
    returns for the same histories)."""
    width = max(s.length for s in states)
    first = states[0].keys[0]
    heads, head_dim = int(first.shape[0]), int(first.shape[2])
    valid = torch.zeros(len(states), width, dtype=torch.bool, device=first.device)
    keys, values = [], []
    for layer in range(len(states[0].keys)):
        k = first.new_zeros(len(states), heads, width, head_dim)
        v = first.new_zeros(len(states), heads, width, head_dim)
        for row, state in enumerate(states):
            k[row, :, width - state.length:] = state.keys[layer]
            v[row, :, width - state.length:] = state.values[layer]
        keys.append(k)
        values.append(v)
    for row, state in enumerate(states):
        valid[row, width - state.length:] = True
    lengths = torch.tensor([s.length for s in states], dtype=torch.long, device=first.device)
    last = torch.tensor([s.last_action for s in states], dtype=torch.long, device=first.device)
    return PrefixCache(keys, values, valid, lengths, last)


def encoded_histories(states: Sequence[EncodedContext]) -> tuple[torch.Tensor, PrefixCache]:
    """What :meth:`GenerativeTransformer.encode` returns for the histories alone, from what is kept: the last
    hidden states (B, d) and the cache. A request with no tokens of its own decodes from it directly; every
    state must hold its last hidden state (those kept by :func:`encode_keeping_histories` do)."""
    if any(state.last_hidden is None for state in states):
        raise ValueError("a kept history without its last hidden state: encode the prompts whole")
    return torch.stack([state.last_hidden for state in states]), stack_contexts(states)


@torch.no_grad()
def encode_after(
    net: GenerativeTransformer, states: Sequence[EncodedContext], suffixes: SequenceBatch
) -> tuple[torch.Tensor, PrefixCache]:
    """Each row's last hidden state (B, d) and the cache of history + suffix, as ``net.encode`` of the
    whole prompts gives them (:func:`~unigrec.inference.retrieval.decode_encoded` takes both).

    ``suffixes``: the requests' behaviour prefixes (:meth:`SequenceSerialiser.behaviour_tokens
    <unigrec.model.tokenizer.SequenceSerialiser.behaviour_tokens>`), all of one length: a padded suffix
    would put padding between a history and its request.
    """
    if len(states) != len(suffixes):
        raise ValueError(f"{len(states)} histories for {len(suffixes)} requests")
    if not bool(suffixes.valid.all()):
        raise ValueError("the requests' behaviour prefixes differ in length: encode them with their histories")
    prefix = stack_contexts(states)
    hidden, tail = net.extend(suffixes.tokens, prefix, item_refs=suffixes.item_refs,
                              query_refs=suffixes.query_refs, query_vectors=suffixes.query_vectors)
    n = suffixes.tokens.shape[1]
    merged = PrefixCache(
        [torch.cat([k, tk], dim=2) for k, tk in zip(prefix.keys, tail.keys)],
        [torch.cat([v, tv], dim=2) for v, tv in zip(prefix.values, tail.values)],
        torch.cat([prefix.valid, torch.ones(len(states), n, dtype=torch.bool, device=prefix.valid.device)], dim=1),
        prefix.next_position + n,
    )
    return hidden[:, -1], merged
