"""A tiny, untrained generative network with spread-out weights, for decoding and retrieval tests.

Random weights at std 0.5 make the code distributions peaked and different per prompt, so beams,
scores and re-ranking have something to tell apart; no test here cares what the network learned.
"""

from __future__ import annotations

from unigrec.model.item_codes import ItemCodes
from unigrec.model.tokenizer import SequenceSerialiser
from unigrec.model.transformer import GenerativeTransformer, TransformerDims
from unigrec.model.vocabulary import NEG, POS, Vocabulary


def tiny_network(
    vocab: Vocabulary, items: ItemCodes, seed: int, ranking_head: bool = True, event_layout: str | None = None,
    past_action_input: bool = False,
) -> tuple[GenerativeTransformer, SequenceSerialiser]:
    """An eval-mode network over ``vocab`` (width 32, 2 layers) and the serialiser its prompts come from
    (``event_layout``: the serialiser's; None = the default)."""
    import torch

    layout = {} if event_layout is None else {"layout": event_layout}
    serialiser = SequenceSerialiser(vocab, items, n_query_tokens=2, max_events=12, **layout)
    torch.manual_seed(seed)
    dims = TransformerDims(vocab.size, serialiser.max_length, 32, 2, 4, 64, 0.0, 16, 2, vocab.token(POS),
                           vocab.token(NEG), ranking_head=ranking_head, past_action_input=past_action_input)
    net = GenerativeTransformer(dims).eval()
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.5)
    return net, serialiser
