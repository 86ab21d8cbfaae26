"""Serialise a user's merged, time-ordered history into model tokens with per-position targets.

One event is written as
    rec:     <rec_item> c_1 .. c_L <pos|neg>                          (c = collaborative ID)
    search:  <src_query> q_1 .. q_n <src_item> c_1 .. c_L <pos|neg>   (c = semantic ID, q = soft tokens)
after a leading <bos>. The behaviour token (and, for search, the query) comes BEFORE the item's codes,
so the prediction made at the behaviour token — the first code of the item (retrieval) — is conditioned
on the event's task and query but never on the item itself; each code then predicts the next code, and
the last code predicts the action token (ranking). One forward pass over the sequence yields every
retrieval and ranking target of the user. The behaviour token is the task prompt of its event: a single
leading task token could not say which task each of the many targets in one merged sequence belongs to.

Each event's last code also carries the item's catalogue index (``item_refs``): the hybrid form adds a
learned per-item embedding there, the one position that predicts no code of its own item.

``layout`` (``train.model.event_layout``) shortens a recommendation event, to measure what its three
tokens cost against a next-item model that predicts from the item's own position (SASRec):
``behaviour_item`` writes no action token after any event (the item still predicts its action, but the
action never enters the input); ``item`` also drops the ``<rec_item>`` token, so a recommendation event
is its codes alone and the previous event's last code predicts its first code (SASRec's layout). That
position then has two targets: the next item's first code (``targets``) and its own item's action
(``actions``, the ranking label every layout also writes there), read by two heads of the same state.
Without action tokens the user's past actions can still enter the input: with
``train.model.past_action_input`` the token right after each event's last code adds an embedding of that
event's action (:func:`unigrec.model.transformer.past_actions`), which no position reads before its own
action is predicted.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from unigrec.model.item_codes import ItemCodes
from unigrec.model.vocabulary import (
    BOS,
    COLLABORATIVE,
    NEG,
    POS,
    QUERY,
    REC_ITEM,
    SEMANTIC,
    SRC_ITEM,
    SRC_QUERY,
    Vocabulary,
)

IGNORE = -100  # target of positions that predict nothing (torch's cross-entropy ignore_index)
LOSS_GROUPS: tuple[str, ...] = ("retrieval_rec", "retrieval_search", "ranking")
RETRIEVAL_REC, RETRIEVAL_SEARCH, RANKING = range(len(LOSS_GROUPS))
NO_GROUP = -1
# how an event is written (train.model.event_layout; module docstring): the default first
EVENT_LAYOUTS: tuple[str, ...] = ("behaviour_item_action", "behaviour_item", "item")


def id_kind(is_search: bool) -> str:
    """The ID an item is written with: semantic for search events and targets (its text reaches it),
    collaborative for recommendation ones (docs/design.md §3)."""
    return SEMANTIC if is_search else COLLABORATIVE


@dataclasses.dataclass(frozen=True)
class EventSeq:
    """Events of one user in time order, as parallel arrays (items are dense catalogue indices)."""

    items: np.ndarray  # int64
    is_search: np.ndarray  # bool
    labels: np.ndarray  # int64, 1 = positive action
    queries: np.ndarray  # int64 index into the query table, -1 for rec events

    def __len__(self) -> int:
        return int(self.items.shape[0])

    def take(self, index: np.ndarray | slice) -> EventSeq:
        return EventSeq(self.items[index], self.is_search[index], self.labels[index], self.queries[index])

    def most_recent(self, n: int) -> EventSeq:
        return self.take(slice(max(len(self) - n, 0), len(self)))


@dataclasses.dataclass(frozen=True)
class TokenSequence:
    """Parallel int64 arrays, one entry per token."""

    tokens: np.ndarray
    targets: np.ndarray  # token the position must predict, IGNORE for none
    slots: np.ndarray  # legal-slice id for the target, -1 for none
    groups: np.ndarray  # loss group (LOSS_GROUPS index), NO_GROUP for none
    query_ids: np.ndarray  # query-table index at soft-token positions, -1 elsewhere
    query_parts: np.ndarray  # which of the query's soft tokens sits here, -1 elsewhere
    # catalogue index of the event's item at its LAST code, -1 elsewhere: where the hybrid form adds the
    # item's own embedding (docs/design.md §4); the other forms ignore it
    item_refs: np.ndarray
    # the event's action (1 = positive, 0 = not) at its LAST code, -1 elsewhere: the ranking label of a
    # training sequence, and the input the next token reads with train.model.past_action_input (so prompts
    # keep it too). Its own channel because in the `item` layout that position's target is the next item's code
    actions: np.ndarray

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    def then(self, after: TokenSequence) -> TokenSequence:
        """This sequence followed by ``after``."""
        return TokenSequence(*(
            np.concatenate([getattr(self, f.name), getattr(after, f.name)]) for f in dataclasses.fields(TokenSequence)
        ))


class SequenceSerialiser:
    """Turns :class:`EventSeq` into :class:`TokenSequence` for one vocabulary and item catalogue."""

    def __init__(
        self,
        vocab: Vocabulary,
        items: ItemCodes,
        n_query_tokens: int,
        max_events: int,
        layout: str = EVENT_LAYOUTS[0],
    ) -> None:
        if max_events < 1:
            raise ValueError("max_events must be >= 1")
        if layout not in EVENT_LAYOUTS:
            raise ValueError(f"event layout must be one of {', '.join(EVENT_LAYOUTS)}, got {layout!r}")
        self.layout = layout
        self.action_tokens = layout == "behaviour_item_action"
        self.rec_prefix = layout != "item"
        self.vocab = vocab
        self.items = items
        self.n_query_tokens = int(n_query_tokens)
        self.max_events = int(max_events)
        self.item_tokens = {kind: vocab.code_tokens(kind, items.codes[kind]) for kind in (SEMANTIC, COLLABORATIVE)}
        self._ids = {name: vocab.token(name) for name in (BOS, REC_ITEM, SRC_ITEM, SRC_QUERY, QUERY, POS, NEG)}

    # ------------------------------------------------------------------ sizes
    def event_length(self, is_search: bool) -> int:
        kind = id_kind(is_search)
        prefix = 2 + self.n_query_tokens if is_search else int(self.rec_prefix)
        return prefix + self.vocab.n_levels(kind) + int(self.action_tokens)

    @property
    def max_length(self) -> int:
        """Longest sequence a prompt or training sequence can be (sizes the position table)."""
        longest = max(self.event_length(True), self.event_length(False))
        return 1 + (self.max_events + 1) * longest

    # ------------------------------------------------------------------ pieces
    def _behaviour_prefix(self, is_search: bool, query: int) -> list[tuple[int, int, int]]:
        """(token, query_id, query_part) of the tokens written before an event's codes."""
        if not is_search:
            return [(self._ids[REC_ITEM], -1, -1)] if self.rec_prefix else []
        soft = [(self._ids[QUERY], int(query), j) for j in range(self.n_query_tokens)]
        return [(self._ids[SRC_QUERY], -1, -1), *soft, (self._ids[SRC_ITEM], -1, -1)]

    def _encode(self, events: EventSeq, with_targets: bool, rec_at_searches: bool = False) -> tuple[list[int], ...]:
        tokens, targets, slots, groups, qids, qparts = [self._ids[BOS]], [IGNORE], [-1], [NO_GROUP], [-1], [-1]
        refs, acts = [-1], [-1]
        parts = (tokens, targets, slots, groups, qids, qparts, refs, acts)
        for item, is_search, label, query in zip(events.items, events.is_search, events.labels, events.queries):
            kind = id_kind(is_search)
            group = RETRIEVAL_SEARCH if is_search else RETRIEVAL_REC
            codes = self.item_tokens[kind][item]
            search_token = len(tokens)
            self._append_prefix(parts, self._behaviour_prefix(bool(is_search), int(query)))
            if is_search and rec_at_searches:
                # <src_query> has read the history and the task, not the query: from there the item is a
                # recommendation target (its collaborative first code), as a next-item model trains on every
                # event; without it the searched events, a quarter of the positives, never teach what comes next
                targets[search_token] = int(self.item_tokens[COLLABORATIVE][item][0])
                slots[search_token] = self.vocab.code_slot(COLLABORATIVE, 0)
                groups[search_token] = RETRIEVAL_REC
            # the behaviour token (last of the prefix; in the `item` layout the token before a recommendation
            # event: <bos> or the previous event's last code) predicts the first code
            targets[-1], slots[-1], groups[-1] = int(codes[0]), self.vocab.code_slot(kind, 0), group
            action = self._ids[POS] if label else self._ids[NEG]
            n_levels = len(codes)
            for level, code in enumerate(codes):
                tokens.append(int(code))
                qids.append(-1)
                qparts.append(-1)
                if level + 1 < n_levels:
                    targets.append(int(codes[level + 1]))
                    slots.append(self.vocab.code_slot(kind, level + 1))
                    groups.append(group)
                    refs.append(-1)
                    acts.append(-1)
                else:
                    targets.append(action)
                    slots.append(self.vocab.action_slot)
                    groups.append(RANKING)
                    refs.append(int(item))
                    acts.append(int(bool(label)))
            if not self.action_tokens:
                continue
            tokens.append(action)
            targets.append(IGNORE)
            slots.append(-1)
            groups.append(NO_GROUP)
            qids.append(-1)
            qparts.append(-1)
            refs.append(-1)
            acts.append(-1)
        if not with_targets:
            # a prompt keeps its events' actions: they are input there (a later token reads the action before
            # it, train.model.past_action_input), and nothing is trained on a prompt
            n = len(tokens)
            parts = (tokens, [IGNORE] * n, [-1] * n, [NO_GROUP] * n, qids, qparts, refs, acts)
        return parts

    @staticmethod
    def _append_prefix(parts: tuple[list[int], ...], prefix: list[tuple[int, int, int]]) -> None:
        """Append behaviour-prefix tokens (token, query id, query part), none of them a target or an item."""
        tokens, targets, slots, groups, qids, qparts, refs, acts = parts
        for token, qid, part in prefix:
            tokens.append(token)
            qids.append(qid)
            qparts.append(part)
            targets.append(IGNORE)
            slots.append(-1)
            groups.append(NO_GROUP)
            refs.append(-1)
            acts.append(-1)

    @staticmethod
    def _pack(parts: tuple[list[int], ...]) -> TokenSequence:
        return TokenSequence(*(np.asarray(p, dtype=np.int64) for p in parts))

    # ------------------------------------------------------------------ public
    def training_sequence(self, history: EventSeq, rec_at_searches: bool = False) -> TokenSequence:
        """All targets of the user's most recent ``max_events`` events, teacher-forced.

        ``rec_at_searches``: each search event's ``<src_query>`` token also predicts its item as a
        recommendation target (``train.rec_targets_at_searches``)."""
        return self._pack(self._encode(history.most_recent(self.max_events), True, rec_at_searches))

    def prompt(self, context: EventSeq, is_search: bool, query: int = -1) -> TokenSequence:
        """Context (most recent ``max_events``) + the target event's behaviour prefix, no targets.

        The model's output at the last position is the distribution of the target's first code.
        """
        return self.prompt_after(self.context_tokens(context), is_search, query)

    def context_tokens(self, context: EventSeq) -> TokenSequence:
        """The first part of :meth:`prompt`: BOS and the most recent ``max_events`` events, no targets.

        A server keeps it per user, since a user's history is fixed while a model serves, and every
        request then only appends its behaviour prefix (:meth:`prompt_after`): serialising the history
        was the largest part of a one-request call's handling."""
        return self._pack(self._encode(context.most_recent(self.max_events), False))

    def behaviour_tokens(self, is_search: bool, query: int = -1) -> TokenSequence:
        """The part of :meth:`prompt_after` that follows the history: the target event's behaviour prefix
        (its task token, and a search's query soft tokens). Every request of one kind has one length of it,
        which a server that keeps users' encoded histories relies on (:mod:`unigrec.inference.user_states`)."""
        parts: tuple[list[int], ...] = tuple([] for _ in dataclasses.fields(TokenSequence))
        self._append_prefix(parts, self._behaviour_prefix(bool(is_search), int(query)))
        return self._pack(parts)

    def prompt_after(self, context: TokenSequence, is_search: bool, query: int = -1) -> TokenSequence:
        """:meth:`context_tokens` + the target event's behaviour prefix: the prompt :meth:`prompt` makes."""
        return context.then(self.behaviour_tokens(is_search, query))
