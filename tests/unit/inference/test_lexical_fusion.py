"""BM25 fused into the search pipeline (unigrec.inference.lexical, issue 35): λ = 0 is today's list, a
query naming an item's title lifts it, the served list is the evaluated one, and validation keeps λ = 0
when the lexical term hurts."""

from __future__ import annotations

import dataclasses
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from unigrec.inference.lexical import LexicalIndex, top_unseen

TITLE_QUERY = "zanzibar"  # the one title word of one item, in no other item's text
MIXED_QUERY = f"genre2 {TITLE_QUERY}"  # two terms no item holds both of: BM25 and coverage disagree


def test_scores_lie_in_zero_one_per_query_and_candidates_skip_seen_and_unmatched_items():
    index = LexicalIndex(["space war film", "space film", "war drama", ""], k1=1.5, b=0.75)
    scores = index.scores(["space war", "war", "unknownword"])
    assert scores.max(axis=1).tolist() == [1.0, 1.0, 0.0]  # the query's best match is 1, no term matched: 0
    assert scores[0, 0] == 1.0 and 0.0 < scores[0, 1] < 1.0 and scores[0, 3] == 0.0
    seen = np.zeros((3, 4), dtype=bool)
    seen[0, 0] = True
    top = top_unseen(scores, seen, 3)
    assert top[0].tolist() == [1, 2, -1]  # 0 is seen, 3 matches no term
    assert top[2].tolist() == [-1, -1, -1]


def _recommender(folder: Path, lexical_weight: float | None, candidates: int = 5, coverage_weight: float = 0.0):
    """A Recommender over a tiny untrained network and a bundle whose item m007 alone is titled
    ``TITLE_QUERY``; ``lexical_weight`` None = settings written before the lexical signal existed."""
    from support import synthetic_train_data as syn
    from support.tiny_net import tiny_network

    from unigrec.inference.prompts import query_table_texts
    from unigrec.inference.retrieval import DecodeSettings, LexicalSettings
    from unigrec.inference.serving import Recommender, write_serving_bundle
    from unigrec.model.item_codes import item_codes_from_frame
    from unigrec.model.vocabulary import Vocabulary

    items = item_codes_from_frame(syn.ids_frame(3))
    net, serialiser = tiny_network(Vocabulary.from_codebooks(syn.CODEBOOKS), items, seed=5)
    events = syn.events_frame(n_users=6)
    texts = [*query_table_texts(events), TITLE_QUERY, MIXED_QUERY]
    ids = syn.item_ids()
    catalogue = pd.DataFrame({
        "item_id": ids, "title": ids,
        "text": [f"{TITLE_QUERY} film" if i == "m007" else f"{i} film genre{n // syn.PER_CLUSTER}" for n, i in enumerate(ids)],
    })
    settings = DecodeSettings(beam_size=8, batch_size=4, pipeline_k=8, fusion_weights={"rec": 0.3, "search": 0.3})
    if lexical_weight is not None:
        settings = dataclasses.replace(
            settings, lexical=LexicalSettings(candidates, 1.5, 0.75), lexical_weights={"search": lexical_weight},
            coverage_weights={"search": coverage_weight},
        )
    vectors = np.random.default_rng(0).normal(size=(len(texts), 16)).astype(np.float32)
    write_serving_bundle(folder, events, catalogue, texts, vectors, settings)
    model = types.SimpleNamespace(vocab=serialiser.vocab, items=items, serialiser=serialiser, net=net)
    return Recommender(model, folder), events, texts, vectors


REQUESTS = pd.DataFrame({
    "user_id": ["u000", "u001", "u002", "stranger"],
    "kind": ["search", "rec", "search", "search"],
    "query": [TITLE_QUERY, None, "genre1 film", TITLE_QUERY],
})


def test_lambda_zero_serves_exactly_the_list_without_the_lexical_signal(tmp_path):
    before, *_ = _recommender(tmp_path / "before", None)
    zero, *_ = _recommender(tmp_path / "zero", 0.0)
    lifted, *_ = _recommender(tmp_path / "lifted", 50.0)
    expected = before.predict(REQUESTS, k=5)
    pd.testing.assert_frame_equal(zero.predict(REQUESTS, k=5), expected)
    # not vacuous: the lexical weight does change the search lists of the same model
    assert not lifted.predict(REQUESTS, k=5).equals(expected)


def test_a_query_naming_an_items_title_lifts_it_to_the_top(tmp_path):
    plain, *_ = _recommender(tmp_path / "plain", 0.0)
    lexical, *_ = _recommender(tmp_path / "lexical", 50.0)
    k = 5

    def top(model, user):
        out = model.predict(pd.DataFrame({"user_id": [user], "kind": ["search"], "query": [TITLE_QUERY]}), k)
        return out["item_id"].tolist()

    titled = plain.model.items.index()["m007"]
    users = [u for u in ("u000", "u001", "u002", "u003", "u004", "stranger")
             if not plain.knows_user(u) or titled not in plain._histories[u].items]  # seen items are never served
    assert "stranger" in users and len(users) > 1
    missing = [u for u in users if top(plain, u)[:1] != ["m007"]]
    assert missing, "the untrained model must not already put the titled item first for these users"
    for user in missing:
        assert top(lexical, user)[0] == "m007"
        assert len(top(lexical, user)) == k


@pytest.mark.parametrize("coverage", [0.0, 3.0])
def test_the_served_fused_list_is_the_evaluated_one(tmp_path, coverage):
    """Recommender.predict and the evaluate stage's GenerativeScores.reranked fuse BM25 (and term coverage)
    through one path."""
    import torch  # noqa: F401  (score_prompts decodes with it)

    from unigrec.evaluate.generative import score_prompts
    from unigrec.inference.lexical import catalogue_index
    from unigrec.inference.prompts import PromptExample, group_user_events
    from unigrec.inference.retrieval import LexicalWeights

    model, events, texts, vectors = _recommender(tmp_path / "lexical", 2.0, candidates=6, coverage_weight=coverage)
    settings = model.settings
    users = {u.user_id: u for u in group_user_events(events, model.model.items, texts)}
    asks = [("u000", TITLE_QUERY), ("u001", "genre1 film"), ("u002", "genre3 film"), ("u003", MIXED_QUERY)]
    examples = []
    for user, query in asks:
        history = users[user].events
        prompt = model.model.serialiser.prompt(history, True, texts.index(query))
        examples.append(PromptExample(user, True, -1, 0, prompt, np.unique(history.items)))
    catalogue = pd.read_parquet(tmp_path / "lexical" / "catalogue.parquet")
    index = catalogue_index(model.model.items.item_ids, catalogue, settings.lexical)
    scores = score_prompts(model.model, examples, np.zeros((len(asks), 0), np.int64), [e.seen for e in examples],
                           vectors, settings, None, index, [q for _, q in asks])
    k = 5
    lexical = LexicalWeights(2.0, coverage)
    assert settings.lexical_for("search") == lexical
    evaluated = [scores.reranked(np.array([row]), settings.weight("search"), lexical)[0][:k] for row in range(len(asks))]
    served = model.predict(pd.DataFrame({"user_id": [u for u, _ in asks], "kind": "search",
                                         "query": [q for _, q in asks]}), k)
    assert [served[served["request"] == row]["item_id"].tolist() for row in range(len(asks))] == evaluated
    assert evaluated != [scores.reranked(np.array([row]), settings.weight("search"))[0][:k] for row in range(len(asks))]
    if coverage:  # the coverage term changes some list beyond what BM25 alone does
        bm25_only = [scores.reranked(np.array([row]), settings.weight("search"), LexicalWeights(2.0))[0][:k]
                     for row in range(len(asks))]
        assert evaluated != bm25_only


def _validation_scores(target_lexical: float, x_lexical: float = 1.0, target_coverage: float = 0.0,
                       x_coverage: float = 0.0):
    """Two validation searches whose target the model ranks first; BM25's own candidate "x" (the target
    too: a duplicate the pool already holds) scores ``x_lexical``, the target ``target_lexical``; their term
    coverages are ``x_coverage`` and ``target_coverage`` ("a" and "b" hold no query term)."""
    from unigrec.evaluate.generative import GenerativeScores

    n = 2
    pool = np.array([["t", "a", "b"]] * n, dtype=object)
    target, x, nothing = [target_lexical, target_coverage], [x_lexical, x_coverage], [0.0, 0.0]
    return GenerativeScores(
        sampled_retrieval=np.zeros((n, 0)), sampled_ranking=np.zeros((n, 0)), retrieved=[["t", "a", "b"]] * n,
        pool_items=pool, pool_retrieval=np.array([[-1.0, -1.5, -2.0]] * n), pool_ranking=np.full((n, 3), 0.5),
        pool_valid=np.ones((n, 3), dtype=bool), pool_lexical=np.array([[target, nothing, nothing]] * n),
        extra_items=np.array([["x", "t"]] * n, dtype=object), extra_retrieval=np.array([[-1.2, -1.0]] * n),
        extra_ranking=np.full((n, 2), 0.5), extra_lexical=np.array([[x, target]] * n),
    )


@pytest.mark.parametrize("target_lexical, chosen", [(0.0, 0.0), (1.0, 0.0)])
def test_validation_keeps_lambda_zero_unless_the_lexical_term_measures_better(target_lexical, chosen):
    from unigrec.evaluate.evaluation import choose_weights

    scores = _validation_scores(target_lexical)
    rows, targets = np.arange(2), ["t", "t"]
    out = choose_weights(scores, rows, targets, (0.0, 0.5), (0.0, 1.0, 4.0), k=3)
    assert out["lexical_weight"] == chosen
    assert out["weight"] == 0.0 and out["weight_without_lexical"] == 0.0
    grid = {lam: q for lam, q in out["ndcg@3_by_lexical_weight"]}
    if target_lexical == 0.0:  # BM25 likes "x", not the target: any λ > 0 pushes the target down
        assert grid[1.0] < grid[0.0] and grid[4.0] < grid[0.0]
    else:  # BM25 agrees with the model: a tie, which goes to λ = 0
        assert grid[1.0] == grid[0.0]


def test_validation_takes_a_lexical_weight_that_lifts_the_target():
    """The mirror case: the beam ranks the target behind "a", BM25 matches only the target."""
    from unigrec.evaluate.evaluation import choose_weights

    scores = _validation_scores(1.0, x_lexical=0.2)
    scores = dataclasses.replace(scores, pool_retrieval=np.array([[-1.6, -1.5, -2.0]] * 2))
    out = choose_weights(scores, np.arange(2), ["t", "t"], (0.0, 0.5), (0.0, 1.0, 4.0), k=3)
    assert out["lexical_weight"] == 1.0  # the smallest λ that puts the target first
    assert out["weight_without_lexical"] == 0.0


def test_validation_takes_a_coverage_weight_when_the_target_holds_more_query_terms():
    """BM25 prefers "x" (one rare query word, strongly) over the target, which holds every query term:
    no λ puts the target first, a μ does, and validation takes the smallest such μ with λ = 0."""
    from unigrec.evaluate.evaluation import choose_weights

    scores = _validation_scores(0.8, x_lexical=1.0, target_coverage=1.0, x_coverage=0.5)
    scores = dataclasses.replace(scores, pool_retrieval=np.array([[-1.6, -1.5, -2.0]] * 2))
    out = choose_weights(scores, np.arange(2), ["t", "t"], (0.0, 0.5), (0.0, 1.0, 4.0), (0.0, 1.0, 4.0), k=3)
    assert (out["lexical_weight"], out["coverage_weight"], out["weight"]) == (0.0, 1.0, 0.0)
    by_mu = {mu: q for mu, q in out["ndcg@3_by_coverage_weight"]}
    assert by_mu[1.0] == 1.0 and by_mu[0.0] < 1.0  # the target first only with the coverage term
    without = choose_weights(scores, np.arange(2), ["t", "t"], (0.0, 0.5), (0.0, 1.0, 4.0), k=3)
    assert without["coverage_weight"] == 0.0
    assert max(q for _, q in without["ndcg@3_by_lexical_weight"]) < 1.0


def test_term_coverage_is_the_share_of_query_terms_over_the_best_share():
    index = LexicalIndex(["space war film", "space film", "war drama", ""], k1=1.5, b=0.75)
    features = index.features(["space war drama", "unknownword space", "unknownword"])
    coverage = features[..., 1]
    assert coverage[0].tolist() == [1.0, 0.5, 1.0, 0.0]  # 2, 1, 2, 0 of 3 terms; the best holds 2
    assert coverage[1].tolist() == [1.0, 1.0, 0.0, 0.0]  # a word no item holds lowers every share alike
    assert coverage[2].tolist() == [0.0] * 4 and features[2, :, 0].tolist() == [0.0] * 4
    assert np.array_equal(features[..., 0], index.scores(["space war drama", "unknownword space", "unknownword"]))
    assert not index.features(["space war drama"], coverage=False)[..., 1].any()


def test_lexical_weights_refuse_negative_values_and_add_nothing_when_zero():
    from unigrec.inference.retrieval import NO_LEXICAL, LexicalWeights, fuse_and_rerank

    with pytest.raises(ValueError, match="negative"):
        LexicalWeights(0.0, -1.0)
    with pytest.raises(ValueError, match="negative"):
        LexicalWeights(-1.0, 0.0)
    assert not NO_LEXICAL.active and LexicalWeights(0.0, 2.0).active
    features = np.array([[[1.0, 0.0], [0.5, 1.0]]])
    assert LexicalWeights(2.0, 3.0).term(features).tolist() == [[2.0, 4.0]]
    items, retrieval, valid = np.array([["a", "b"]]), np.array([[-1.0, -2.0]]), np.ones((1, 2), dtype=bool)
    assert fuse_and_rerank(items, retrieval, None, valid, 0.0, features, LexicalWeights(0.0, 2.0))[0].tolist() == [["b", "a"]]
    assert fuse_and_rerank(items, retrieval, None, valid, 0.0, features, LexicalWeights(2.0, 0.0))[0].tolist() == [["a", "b"]]
    with pytest.raises(ValueError, match="features"):
        fuse_and_rerank(items, retrieval, None, valid, 0.0, None, LexicalWeights(1.0, 0.0))
