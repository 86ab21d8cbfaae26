"""RQ-VAE, k-means init and training loop: hand-checkable arithmetic, structure and determinism."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from support import REPO
from support.ids_project import single_threaded_torch  # noqa: F401 (autouse fixture)

from unigrec.config import load_section
from unigrec.ids.kmeans import kmeans, kmeans_plusplus
from unigrec.ids.rqvae import DualRQVAE, QuantiserShape, residual_quantize
from unigrec.ids.train_rqvae import batch_indices, encode_in_chunks, train_rqvae

ROOT = REPO


def test_residual_quantize_exact_arithmetic():
    x = torch.tensor([[3.1, 0.9], [0.2, -0.1]])
    level0 = torch.tensor([[0.0, 0.0], [3.0, 1.0]])
    level1 = torch.tensor([[0.1, -0.1], [0.0, 0.0], [0.2, -0.1]])
    codes, total, inputs = residual_quantize(x, [level0, level1])
    # item 0: 3.1,0.9 -> code 1 (3,1), residual 0.1,-0.1 -> code 0 exactly; item 1: code 0, then 0.2,-0.1.
    assert codes.tolist() == [[1, 0], [0, 2]]
    assert torch.allclose(inputs[0], x)
    assert torch.allclose(inputs[1], torch.tensor([[0.1, -0.1], [0.2, -0.1]]))
    assert torch.allclose(total, x)  # both items are represented exactly by their two codewords


def _clusters(n_per: int = 30, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    return torch.cat([c + 0.1 * torch.randn(n_per, 2, generator=g) for c in centres])


def test_kmeans_finds_separated_clusters_and_is_seeded():
    x = _clusters()
    a = kmeans(x, 4, 10, torch.Generator().manual_seed(3))
    b = kmeans(x, 4, 10, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    found = sorted((round(float(c[0])), round(float(c[1]))) for c in a)
    assert found == [(0, 0), (0, 10), (10, 0), (10, 10)]


def test_kmeans_plusplus_with_fewer_points_than_codes_does_not_fail():
    x = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    seeds = kmeans_plusplus(x, 5, torch.Generator().manual_seed(0))
    assert seeds.shape == (5, 2)
    assert set(map(tuple, seeds.tolist())) <= {(0.0, 0.0), (1.0, 1.0)}


def _shape(**overrides) -> QuantiserShape:
    base = QuantiserShape(
        input_dims={"semantic": 6, "collaborative": 4}, latent_dim=3, hidden_dims=(8,),
        shared_levels=2, shared_codebook_size=4, specific_levels=1, specific_codebook_size=3,
    )
    return dataclasses.replace(base, **overrides)


def _inputs(n: int = 40, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"semantic": torch.randn(n, 6, generator=g), "collaborative": torch.randn(n, 4, generator=g)}


def test_dual_structure_shared_then_split():
    torch.manual_seed(0)
    model = DualRQVAE(_shape())
    assert model.level_sizes() == {"shared_0": 4, "shared_1": 4, "sem_0": 3, "col_0": 3}
    assert model.codebooks["shared_0"].shape == (4, 6)  # shared levels see the concatenated latent
    assert model.codebooks["sem_0"].shape == (3, 3)  # specific levels see one source's half
    model.initialise_codebooks(_inputs(), 5, torch.Generator().manual_seed(0))
    out = model(_inputs())
    assert set(out.codes) == {"shared_0", "shared_1", "sem_0", "col_0"}
    # The specific levels quantise the halves of what the shared levels left over.
    left = out.latent - model.codebooks["shared_0"][out.codes["shared_0"]] - \
        model.codebooks["shared_1"][out.codes["shared_1"]]
    assert torch.allclose(out.level_inputs["sem_0"], left[:, :3], atol=1e-6)
    assert torch.allclose(out.level_inputs["col_0"], left[:, 3:], atol=1e-6)
    assert torch.allclose(model.latent_from_codes(out.codes), out.quantised, atol=1e-6)


def test_semantic_reconstruction_depends_only_on_the_semantic_id():
    torch.manual_seed(0)
    model = DualRQVAE(_shape())
    model.initialise_codebooks(_inputs(), 5, torch.Generator().manual_seed(0))
    codes = model(_inputs()).codes
    other = dict(codes, col_0=(codes["col_0"] + 1) % 3)
    a = model.decode(model.latent_from_codes(codes))
    b = model.decode(model.latent_from_codes(other))
    assert torch.equal(a["semantic"], b["semantic"])
    assert not torch.equal(a["collaborative"], b["collaborative"])


def test_straight_through_gradients_reach_the_encoders():
    torch.manual_seed(0)
    model = DualRQVAE(_shape())
    x = _inputs()
    model.initialise_codebooks(x, 5, torch.Generator().manual_seed(0))
    out = model(x)
    sum(((out.reconstructions[s] - x[s]) ** 2).sum() for s in x).backward()
    for s in x:
        assert model.encoders[s][0].weight.grad is not None
        assert model.encoders[s][0].weight.grad.abs().sum() > 0


def test_single_source_model_has_no_shared_levels():
    model = DualRQVAE(_shape(input_dims={"collaborative": 4}, shared_levels=0, specific_levels=3))
    assert list(model.level_sizes()) == ["col_0", "col_1", "col_2"]
    model.initialise_codebooks({"collaborative": torch.randn(20, 4)}, 3, torch.Generator().manual_seed(0))
    out = model({"collaborative": torch.randn(5, 4)})
    assert set(out.reconstructions) == {"collaborative"}


def test_batch_indices_cover_every_row_each_epoch():
    batches = list(batch_indices(10, 4, 4, torch.Generator().manual_seed(0)))
    assert [len(b) for b in batches] == [4, 4, 4, 4]
    assert len(set(torch.cat(batches[:2]).tolist())) == 8  # no repeats inside an epoch


@pytest.fixture(scope="module")
def rq_cfg():
    cfg = load_section("identifiers", ROOT / "params.yaml").rqvae
    return dataclasses.replace(cfg, hidden_dims=(8,), latent_dim=3, steps=150, warmup_steps=30,
                               batch_size=16, kmeans_iters=5, lr=0.01)


def test_training_reduces_loss_and_is_deterministic(rq_cfg):
    x = _inputs(n=64)

    def trained() -> tuple[DualRQVAE, dict[str, float]]:
        torch.manual_seed(1)
        model = DualRQVAE(_shape())
        with torch.no_grad():
            before = float(sum(((model.decode(model.encode(x))[s] - x[s]) ** 2).sum(1).mean() for s in x))
        losses = train_rqvae(model, x, rq_cfg, torch.Generator().manual_seed(1), show_progress=False)
        return model, losses | {"before": before}

    a, la = trained()
    b, lb = trained()
    assert la["reconstruction"] < la["before"]
    assert la == lb
    ca, ra = encode_in_chunks(a, x, chunk=10)
    cb, _ = encode_in_chunks(b, x, chunk=64)  # chunking must not change the codes
    assert all(torch.equal(ca[k], cb[k]) for k in ca)
    with torch.no_grad():
        full = a(x)
    assert all(torch.equal(ca[k], full.codes[k]) for k in ca)
    assert torch.allclose(ra["col_0"], full.level_inputs["col_0"], atol=1e-6)
