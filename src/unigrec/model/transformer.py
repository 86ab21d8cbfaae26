"""Decoder-only causal transformer over the interleaved token sequence (a plain ``nn.Module``).

Two ways in: :meth:`GenerativeTransformer.encode` runs a (left-padded) batch of sequences and returns
the per-layer keys/values as a :class:`PrefixCache`; :meth:`GenerativeTransformer.extend` runs a few
new tokens for ``group`` continuations of each cached prefix (beam hypotheses, or candidate items)
without copying or recomputing the prefix: the new queries attend to the shared prefix keys by
broadcasting, and to their own growing :class:`TailCache`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from unigrec.model.batch import SequenceBatch


@dataclasses.dataclass(frozen=True)
class TransformerDims:
    vocab_size: int
    max_positions: int
    d_model: int
    n_layers: int
    n_heads: int
    d_ff: int
    dropout: float
    query_dim: int  # width of the sentence vectors that become query soft tokens
    n_query_tokens: int
    pos_token: int
    neg_token: int
    ranking_head: bool  # True: MLP ranking head on the item position (atomic form); False: <pos>/<neg> logits
    # Dropout on the attention probabilities. Cards written before this field existed load as 0: only
    # training reads it.
    attention_dropout: float = 0.0
    # Form of the retrieval logits (train.retrieval_loss): cosine (hidden state and token embeddings
    # L2-normalised) or the raw dot product, over a temperature. Training and every decoder go through
    # GenerativeTransformer.output_logits, so a model decodes with the scores it was trained on. Cards
    # written before these fields load as the raw dot product at temperature 1, as those models trained.
    logits_l2_normalise: bool = False
    logits_temperature: float = 1.0
    # Hybrid items (train.model.item_representation: hybrid): a learned embedding per catalogue item, added
    # at each event's last code (see GenerativeTransformer._embed). Cards written before these fields load
    # without one, as those models trained.
    item_embedding: bool = False
    n_items: int = 0  # rows of the per-item table (the catalogue); read only with item_embedding
    # train.model.embedding_init. Cards written before this field load as gpt2, as those models trained.
    embedding_init: str = "gpt2"
    # train.model.positions: learned absolute embeddings, or rotary (RoPE: queries and keys rotated by their
    # position, so attention reads how far back a token is). Cards written before this field load as learned.
    positions: str = "learned"
    # train.model.past_action_input: a learned embedding of an event's action (positive or not) added at the
    # token right after the event's last code, for the layouts that write no action token. Cards written
    # before this field load without it, as those models trained.
    past_action_input: bool = False
    # Hybrid items scored densely (train.model.item_representation: hybrid_dense): one token per item, as in
    # the atomic form, whose row is composed from the item's code embeddings (``composed_levels`` per item,
    # rows of one code table of ``code_table_size``) plus its own row for items with training events (see
    # GenerativeTransformer.token_table). 0: rows are the token embedding's own. Cards written before these
    # fields load without it, as those models trained.
    composed_levels: int = 0
    code_table_size: int = 0


@dataclasses.dataclass
class PrefixCache:
    """Keys/values of encoded prefixes: per layer (B, H, T, dh); ``valid`` (B, T) marks real tokens."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    valid: torch.Tensor
    next_position: torch.Tensor  # (B,) position id of the first token after the prefix
    # (B,) the action at each prefix's last token (1/0 where it is an event's last code, -1 elsewhere): what
    # the first appended token reads as its past action (past_action_input); None when nothing is carried
    last_action: torch.Tensor | None = None


@dataclasses.dataclass
class TailCache:
    """Keys/values of tokens appended after the prefix, per continuation: per layer (B*g, H, t, dh)."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]

    @property
    def length(self) -> int:
        return int(self.keys[0].shape[2]) if self.keys else 0

    def reorder(self, rows: torch.Tensor) -> TailCache:
        """Keep/duplicate continuations (beam search picks parents)."""
        return TailCache([k[rows] for k in self.keys], [v[rows] for v in self.values])


ROTARY_BASE = 10_000.0  # RoPE's wavelength base (Su et al.): the slowest pair turns once in ~60,000 positions


class RotaryPositions(nn.Module):
    """RoPE (Su et al., 2021): each pair of a head's channels rotated by an angle proportional to the position,
    so a query-key dot product depends on the two positions only through their difference.

    Learned absolute embeddings must learn "the event just before" separately for every position of a
    150-token window; rotations give every position that relation at once. Keys are cached rotated, so
    extending a cached prefix needs only the new tokens' positions.
    """

    def __init__(self, head_dim: int, max_positions: int, base: float = ROTARY_BASE) -> None:
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"rotary positions need an even head width, got {head_dim}")
        inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        angles = torch.outer(torch.arange(max_positions, dtype=torch.float32), inv_freq)  # (P, dh/2)
        # not saved with the weights: a pure function of the dims
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """``x`` (B, H, T, dh) rotated by ``positions`` (B, T)."""
        cos = self.cos[positions].unsqueeze(1).to(x.dtype)  # (B, 1, T, dh/2)
        sin = self.sin[positions].unsqueeze(1).to(x.dtype)
        x1, x2 = x[..., 0::2], x[..., 1::2]
        return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)


class CausalSelfAttention(nn.Module):
    def __init__(self, d_model: int, n_heads: int, dropout: float, rotary: RotaryPositions | None = None) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} is not divisible by n_heads {n_heads}")
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.dropout = dropout
        self.rotary = rotary  # one table shared by every layer (None: positions come from embeddings)

    def _split(
        self, x: torch.Tensor, positions: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, t, _ = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if self.rotary is not None:
            if positions is None:
                raise ValueError("rotary attention needs the tokens' positions")
            q, k = self.rotary(q, positions), self.rotary(k, positions)
        return q, k, v

    def _merge(self, y: torch.Tensor) -> torch.Tensor:
        b, _, t, _ = y.shape
        return self.out(y.transpose(1, 2).reshape(b, t, self.n_heads * self.head_dim))

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None, positions: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``mask`` None means plain causal attention (no padding before any real token); ``positions``
        (B, T) are read by rotary attention only."""
        q, k, v = self._split(x, positions)
        p = self.dropout if self.training else 0.0
        if mask is None:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        else:
            # under autocast q is half precision; a float mask must match it
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask.to(q.dtype), dropout_p=p)
        return self._merge(y), k, v

    def extend(
        self,
        x: torch.Tensor,
        prefix_k: torch.Tensor,
        prefix_v: torch.Tensor,
        prefix_valid: torch.Tensor,
        tail_k: torch.Tensor | None,
        tail_v: torch.Tensor | None,
        positions: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        q, k, v = self._split(x, positions)  # (B*g, H, n, dh); the cached keys are rotated already
        if tail_k is not None:
            k = torch.cat([tail_k, k], dim=2)
            v = torch.cat([tail_v, v], dim=2)
        bg, h, n, dh = q.shape
        b = prefix_k.shape[0]
        g = bg // b
        if g == 1:
            # one continuation per prefix (a served request after a kept history): the fused kernel over the
            # prefix and the new tokens together, a handful of ops where the general path below runs ~20
            t_all = k.shape[2]
            causal = torch.ones(n, t_all, dtype=torch.bool, device=x.device).tril(diagonal=t_all - n)
            visible = torch.cat([prefix_valid[:, None, None, :].expand(b, 1, n, -1),
                                 causal.expand(b, 1, n, t_all)], dim=-1)
            y = F.scaled_dot_product_attention(q, torch.cat([prefix_k, k], dim=2), torch.cat([prefix_v, v], dim=2),
                                               attn_mask=visible)
            return self._merge(y), k, v
        if n == 1 and tail_k is None:
            # g continuations of one new token each (candidate items, a first beam level): each attends to the
            # shared prefix and to itself only, i.e. one fused attention per prefix whose g queries see the
            # prefix plus the diagonal of their own keys; no (B*g)-wide copy of the prefix is made
            t = prefix_k.shape[2]

            def per_prefix(z: torch.Tensor) -> torch.Tensor:  # (B*g, H, 1, dh) -> (B, H, g, dh)
                return z.view(b, g, h, dh).transpose(1, 2)

            own = torch.eye(g, dtype=torch.bool, device=x.device).expand(b, 1, g, g)
            visible = torch.cat([prefix_valid[:, None, None, :].expand(b, 1, g, t), own], dim=-1)
            y = F.scaled_dot_product_attention(per_prefix(q), torch.cat([prefix_k, per_prefix(k)], dim=2),
                                               torch.cat([prefix_v, per_prefix(v)], dim=2), attn_mask=visible)
            return self._merge(y.transpose(1, 2).reshape(bg, h, 1, dh)), k, v
        scale = 1.0 / math.sqrt(dh)
        qg = q.view(b, g, h, n, dh)
        s_prefix = torch.einsum("bghnd,bhtd->bghnt", qg, prefix_k) * scale
        s_prefix = s_prefix.masked_fill(~prefix_valid[:, None, None, None, :], float("-inf"))
        s_tail = (q @ k.transpose(-1, -2)) * scale  # (B*g, H, n, t+n)
        t_all = k.shape[2]
        causal = torch.ones(n, t_all, dtype=torch.bool, device=x.device).tril(diagonal=t_all - n)
        s_tail = s_tail.masked_fill(~causal, float("-inf")).view(b, g, h, n, t_all)
        probs = torch.softmax(torch.cat([s_prefix, s_tail], dim=-1), dim=-1)
        t_prefix = prefix_k.shape[2]
        y = torch.einsum("bghnt,bhtd->bghnd", probs[..., :t_prefix], prefix_v)
        y = y + probs[..., t_prefix:] @ v.view(b, g, h, t_all, dh)
        return self._merge(y.reshape(bg, h, n, dh)), k, v


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_ff: int,
        dropout: float,
        attention_dropout: float,
        rotary: RotaryPositions | None = None,
    ) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, n_heads, attention_dropout, rotary)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Linear(d_ff, d_model))
        self.drop = nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None, positions: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        a, k, v = self.attn(self.ln1(x), mask, positions)
        x = x + self.drop(a)
        return x + self.drop(self.mlp(self.ln2(x))), k, v

    def extend(
        self, x: torch.Tensor, *cache: torch.Tensor | None, positions: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        a, k, v = self.attn.extend(self.ln1(x), *cache, positions=positions)
        x = x + a
        return x + self.mlp(self.ln2(x)), k, v


class GenerativeTransformer(nn.Module):
    """Token + position embeddings, query soft tokens, causal blocks, tied output head; in the hybrid form
    also a per-item embedding table and the mask of the items it holds an embedding for; in the
    hybrid_dense form a code table that items' rows are composed from (:meth:`token_table`)."""

    def __init__(self, dims: TransformerDims) -> None:
        super().__init__()
        self.dims = dims
        d = dims.d_model
        if dims.positions not in POSITION_KINDS:
            raise ValueError(f"positions must be one of {POSITION_KINDS}, got {dims.positions!r}")
        if dims.embedding_init not in EMBEDDING_INITS:
            raise ValueError(f"embedding_init must be one of {EMBEDDING_INITS}, got {dims.embedding_init!r}")
        self.token_embedding = nn.Embedding(dims.vocab_size, d)
        # rotary: no table at all, so every parameter still takes part in every step (DDP)
        rotary = RotaryPositions(d // dims.n_heads, dims.max_positions) if dims.positions == "rotary" else None
        self.position_embedding = nn.Embedding(dims.max_positions, d) if rotary is None else None
        # One sentence vector -> n soft tokens; richer than one token, far shorter than the text itself.
        self.query_projection = nn.Linear(dims.query_dim, dims.n_query_tokens * d)
        self.blocks = nn.ModuleList(
            Block(d, dims.n_heads, dims.d_ff, dims.dropout, dims.attention_dropout, rotary)
            for _ in range(dims.n_layers)
        )
        self.norm = nn.LayerNorm(d)
        self.drop = nn.Dropout(dims.dropout)
        self.ranking_mlp = (
            nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, 1)) if dims.ranking_head else None
        )
        self.apply(_init_weights)
        # A plain float, not a buffer: it follows from the card's dims, so saved weights load unchanged
        self.input_scale = 1.0
        if dims.embedding_init in ("scaled", "scaled_queries"):
            nn.init.normal_(self.token_embedding.weight, std=d**-0.5)
            if self.position_embedding is not None:
                nn.init.normal_(self.position_embedding.weight, std=d**-0.5)
            self.input_scale = math.sqrt(d)
        if dims.embedding_init == "scaled_queries":
            # Items enter at unit variance under `scaled`, a query's soft tokens at GPT-2's 0.02 (they come out of
            # a projection, not the token table): 50x fainter than the items beside them. Sentence vectors are
            # L2-normalised, so N(0, 1) weights give each soft-token coordinate the items' unit variance. Tried
            # because search learned slowly under `scaled`; it learned slower still on ml-100k
            # (docs/experiments/2026-12-05-past-actions.md), so it is an option, not the default.
            nn.init.normal_(self.query_projection.weight, std=1.0)
        if dims.item_embedding:
            if dims.n_items < 1:
                raise ValueError("item_embedding needs the catalogue size n_items >= 1")
            # Zeros, and made after the init above: a hybrid net starts as exactly the codes-only net of the
            # same seed (same weights, same random stream), and an item whose row never gets a gradient
            # (no training event in any window) stays served from its codes alone, never from init noise.
            self.item_embedding = nn.Embedding.from_pretrained(torch.zeros(dims.n_items, d), freeze=False)
            # Items with events in the TRAIN split (set by training, saved with the weights): any other
            # item is cold, and its row is masked out so it is written by its codes alone.
            self.register_buffer("item_has_events", torch.zeros(dims.n_items, dtype=torch.bool))
        if dims.past_action_input:
            # Zeros, made last, for the reason the item table is: the net starts as the one without it
            self.action_embedding = nn.Embedding.from_pretrained(torch.zeros(2, d), freeze=False)
        if dims.composed_levels:
            if dims.n_items < 1 or dims.code_table_size < 1 or dims.n_items >= dims.vocab_size:
                raise ValueError("composed items need the catalogue size (n_items >= 1, the vocabulary's last "
                                 "n_items tokens) and a code table (code_table_size >= 1)")
            # the atomic vocabulary's item slice is its last one: item i is token item_offset + i
            self.item_offset = dims.vocab_size - dims.n_items
            # Zeros, made after every random init: a composed net starts as exactly the atomic net of its seed,
            # and an item without training events starts at the zero vector until its codes learn.
            self.code_embedding = nn.Embedding.from_pretrained(torch.zeros(dims.code_table_size, d), freeze=False)
            # Each item's codes (rows of code_embedding) and which items have TRAIN events: set by training
            # from the identifiers stage's IDs and saved with the weights, so a served model needs no ID table.
            self.register_buffer("item_code_index", torch.zeros(dims.n_items, dims.composed_levels,
                                                                dtype=torch.long))
            self.register_buffer("item_has_events", torch.zeros(dims.n_items, dtype=torch.bool))

    # ------------------------------------------------------------------ embeddings
    def _embed(
        self,
        tokens: torch.Tensor,
        positions: torch.Tensor,
        query_refs: torch.Tensor | None,
        query_vectors: torch.Tensor | None,
        item_refs: torch.Tensor | None = None,
        past_actions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if positions.max() >= self.dims.max_positions:
            raise ValueError(f"sequence longer than max_positions={self.dims.max_positions}")
        x = F.embedding(tokens, self.token_table())
        if self.input_scale != 1.0:
            x = x * self.input_scale
        if query_vectors is not None and query_refs is not None:
            # Always route through the projection (even when no position uses it) so every parameter
            # takes part in every step: DDP requires it without find_unused_parameters.
            soft = self.query_projection(query_vectors).view(-1, self.dims.d_model)
            is_query = (query_refs >= 0).unsqueeze(-1)
            x = torch.where(is_query, soft[query_refs.clamp(min=0)], x)
        if self.dims.item_embedding and item_refs is not None:
            x = x + self._item_vectors(item_refs)
        if self.dims.past_action_input and past_actions is not None:
            # the lookup runs even where no action is carried, so the table takes part in every step (DDP)
            keep = (past_actions >= 0).unsqueeze(-1).to(self.action_embedding.weight.dtype)
            x = x + self.action_embedding(past_actions.clamp(min=0)) * keep
        if self.position_embedding is not None:
            x = x + self.position_embedding(positions)
        return self.drop(x)

    def _item_vectors(self, item_refs: torch.Tensor) -> torch.Tensor:
        """(..., d) the learned embedding of the item at each last-code position, zero elsewhere and for
        cold items.

        Only an event's LAST code carries it (``item_refs`` >= 0 there alone), the position that predicts
        the action, never a code: no code of an item is predicted from a state that already knows the
        item, so retrieval cannot read its answer; later events and the ranking read-out see the item
        itself, not only the codes it may share with others. Beam search never feeds a last code.
        """
        ref = item_refs.clamp(min=0)
        keep = (item_refs >= 0) & self.item_has_events[ref]
        # the lookup runs even when nothing is kept, so the table takes part in every step (DDP)
        return self.item_embedding(ref) * keep.unsqueeze(-1).to(self.item_embedding.weight.dtype)

    def token_table(self) -> torch.Tensor:
        """(vocab, d) the rows tokens enter with and retrieval scores against (the output head is tied).

        The token embedding itself, but in the ``hybrid_dense`` form an item's row is the sum of its code
        embeddings plus its own row, the latter for items with training events only: warm items keep an
        atomic ID's capacity to differ from every other item, and an item without a training event is written
        and scored by its codes alone, which it shares with items that have events. One table serves input and
        output, so a cold item can be retrieved by the same dense scoring as any other.
        """
        weight = self.token_embedding.weight
        if not self.dims.composed_levels:
            return weight
        own = weight[self.item_offset:] * self.item_has_events.unsqueeze(-1).to(weight.dtype)
        codes = self.code_embedding(self.item_code_index).sum(1)
        return torch.cat([weight[: self.item_offset], own + codes])

    # ------------------------------------------------------------------ passes
    def encode(
        self,
        tokens: torch.Tensor,
        valid: torch.Tensor,
        query_refs: torch.Tensor | None = None,
        query_vectors: torch.Tensor | None = None,
        item_refs: torch.Tensor | None = None,
        actions: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, PrefixCache]:
        """Run (B, T) padded sequences; returns final hidden states (B, T, d) and the cache.

        Prompts are left-padded (their last tokens line up); training batches may be right-padded, which
        needs no mask at all: causal attention alone keeps every real token off the padding after it.
        ``item_refs`` (B, T): items at last codes (:class:`~unigrec.model.batch.SequenceBatch`), read by
        the hybrid form only. ``actions`` (B, T): each event's action at its last code
        (:attr:`~unigrec.model.batch.SequenceBatch.actions`); with ``past_action_input`` the token after
        that code reads it (:func:`past_actions`), so no position sees its own event's action.
        """
        positions = (valid.long().cumsum(1) - 1).clamp(min=0)
        mask = None if _padding_only_at_the_end(valid) else _left_padding_mask(valid)
        past = past_actions(actions) if actions is not None else None
        x = self._embed(tokens, positions, query_refs, query_vectors, item_refs, past)
        keys, values = [], []
        for block in self.blocks:
            x, k, v = block(x, mask, positions)
            keys.append(k)
            values.append(v)
        last = actions[:, -1] if actions is not None else None
        cache = PrefixCache(keys, values, valid, valid.long().sum(1), last)
        return self.norm(x), cache

    def encode_batch(self, batch: SequenceBatch) -> tuple[torch.Tensor, PrefixCache]:
        """:meth:`encode` of every input channel of ``batch``: the one call training, evaluation and serving
        make, so none of them can forget a channel the model reads."""
        return self.encode(batch.tokens, batch.valid, batch.query_refs, batch.query_vectors, batch.item_refs,
                           batch.actions)

    def extend(
        self,
        tokens: torch.Tensor,
        prefix: PrefixCache,
        tail: TailCache | None = None,
        item_refs: torch.Tensor | None = None,
        query_refs: torch.Tensor | None = None,
        query_vectors: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, TailCache]:
        """Run (B*g, n) new tokens after each of the B cached prefixes (g continuations each).

        ``item_refs`` (B*g, n): the item where a new token is an item's last code (candidate scoring
        feeds whole items), -1 elsewhere; None when no last code is fed (beam search). ``query_refs`` /
        ``query_vectors``: soft query tokens among the new ones, as in :meth:`encode` (a served request's
        behaviour prefix after a user's stored history, :mod:`unigrec.inference.user_states`).
        The first token fed right after the prefix reads the prefix's ``last_action`` as its past action,
        as it would in one pass; no new token carries an action of its own (none is an observed event).
        """
        bg, n = tokens.shape
        b = prefix.valid.shape[0]
        start = prefix.next_position.repeat_interleave(bg // b) + (tail.length if tail else 0)
        positions = start[:, None] + torch.arange(n, device=tokens.device)
        past = None
        if tail is None and prefix.last_action is not None:
            past = torch.full_like(tokens, -1)
            past[:, 0] = prefix.last_action.repeat_interleave(bg // b)
        x = self._embed(tokens, positions, query_refs, query_vectors, item_refs, past)
        keys, values = [], []
        for i, block in enumerate(self.blocks):
            tk = tail.keys[i] if tail else None
            tv = tail.values[i] if tail else None
            x, k, v = block.extend(x, prefix.keys[i], prefix.values[i], prefix.valid, tk, tv, positions=positions)
            keys.append(k)
            values.append(v)
        return self.norm(x), TailCache(keys, values)

    # ------------------------------------------------------------------ heads
    def token_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits over the whole vocabulary; the output head is tied to the token embedding."""
        return self.output_logits(hidden, self.token_table())

    def output_logits(self, hidden: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """(..., n) logits of ``hidden`` (..., d) against ``weight`` (n, d), rows of the token embedding,
        in the form retrieval trains with (see :class:`TransformerDims`)."""
        if self.dims.logits_l2_normalise:
            hidden, weight = F.normalize(hidden, dim=-1), F.normalize(weight, dim=-1)
        logits = hidden @ weight.T
        # the raw form skips a pass over (positions x vocabulary) it would not change
        return logits if self.dims.logits_temperature == 1.0 else logits / self.dims.logits_temperature

    def ranking_logit(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logit of P(<pos>) at an item's last position."""
        if self.ranking_mlp is not None:
            return self.ranking_mlp(hidden).squeeze(-1)
        pair = hidden @ self.token_embedding.weight[[self.dims.pos_token, self.dims.neg_token]].T
        return pair[..., 0] - pair[..., 1]  # softmax over {pos, neg} == sigmoid of the difference


def past_actions(actions: torch.Tensor) -> torch.Tensor:
    """(B, T) the action each token reads as input: the one at the token before it (an event's last code
    holds its action, so the next event's first token, or a layout's behaviour token, gets it), -1 at the
    first token. Shifted, never in place: the last code's own ranking target stays out of its input."""
    return torch.cat([torch.full_like(actions[:, :1], -1), actions[:, :-1]], dim=1)


def _padding_only_at_the_end(valid: torch.Tensor) -> bool:
    """True when no row has a padding position before a real one (right padding, or none)."""
    return bool((valid[:, :-1] >= valid[:, 1:]).all())


def _left_padding_mask(valid: torch.Tensor) -> torch.Tensor:
    """(B, 1, T, T) additive mask: causal, no padding keys; padding rows see themselves (else NaN)."""
    t = valid.shape[1]
    causal = torch.ones(t, t, dtype=torch.bool, device=valid.device).tril()
    eye = torch.eye(t, dtype=torch.bool, device=valid.device)
    visible = ((causal & valid[:, None, :]) | eye).unsqueeze(1)
    # additive float, not boolean: on CPU that takes SDPA's fused kernel instead of the math path
    return torch.zeros(visible.shape, device=valid.device).masked_fill(~visible, float("-inf"))


EMBEDDING_INITS = ("gpt2", "scaled", "scaled_queries")
POSITION_KINDS = ("learned", "rotary")


def _init_weights(module: nn.Module) -> None:
    # GPT-2's scheme: small normal weights keep the tied output head's logits near zero at start.
    std = 0.02
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=std)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)
