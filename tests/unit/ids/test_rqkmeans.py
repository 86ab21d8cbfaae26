"""RQ-KMeans (issue 37 item 2): the PCA projection and residual k-means, checked on data with a known answer."""

from __future__ import annotations

import pytest
import torch
from support.ids_project import single_threaded_torch  # noqa: F401 (autouse fixture)

from unigrec.ids.rqkmeans import fit_rqkmeans, pca_basis
from unigrec.ids.rqvae import DualRQVAE, QuantiserShape


def test_pca_basis_finds_the_axes_by_variance_and_pads_past_the_input_width():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2000, 3, generator=g) * torch.tensor([1.0, 5.0, 0.2]) + torch.tensor([3.0, -1.0, 2.0])
    mean, basis = pca_basis(x, 2)
    assert torch.allclose(mean, torch.tensor([3.0, -1.0, 2.0]), atol=0.3)
    # largest variance first (axis 1, then 0), unit rows, sign fixed so the largest entry is positive
    assert torch.allclose(basis, torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]), atol=0.05)
    _, wide = pca_basis(x, 5)
    assert wide.shape == (5, 3) and torch.count_nonzero(wide[3:]) == 0
    assert torch.allclose(wide[:3] @ wide[:3].T, torch.eye(3), atol=1e-5)


def _shape(**kw) -> QuantiserShape:
    base = {"input_dims": {"semantic": 6, "collaborative": 4}, "latent_dim": 2, "hidden_dims": (),
            "shared_levels": 1, "shared_codebook_size": 4, "specific_levels": 1, "specific_codebook_size": 3}
    return QuantiserShape(**(base | kw))


def _two_sources(n_per: int = 25) -> dict[str, torch.Tensor]:
    """Four groups: each group's semantic and collaborative rows sit near their own point in a plane."""
    g = torch.Generator().manual_seed(1)
    group = torch.arange(4).repeat_interleave(n_per)
    corners = torch.tensor([[0.0, 0.0], [8.0, 0.0], [0.0, 8.0], [8.0, 8.0]])
    out = {}
    for source, width in (("semantic", 6), ("collaborative", 4)):
        plane = torch.linalg.qr(torch.randn(width, 2, generator=g))[0]  # an orthonormal 2-d plane in the input
        out[source] = (corners[group] + 0.05 * torch.randn(len(group), 2, generator=g)) @ plane.T
    return out


def test_shared_level_recovers_the_groups_and_the_ids_reconstruct_the_inputs():
    inputs = _two_sources()
    model = DualRQVAE(_shape())
    figures = fit_rqkmeans(model, inputs, kmeans_iters=20, generator=torch.Generator().manual_seed(0))
    codes, _, _ = model.quantise_latent(model.encode(inputs))
    shared = codes["shared_0"].view(4, -1)
    assert all(len(set(row.tolist())) == 1 for row in shared)  # one code per group ...
    assert len(set(shared[:, 0].tolist())) == 4  # ... and a different code for each group
    # the data lie in a 2-d plane per source, so the 2-d projection loses nothing: only the small noise is left
    spread = sum(((x - x.mean(0)) ** 2).sum(1).mean() for x in inputs.values())
    assert figures["reconstruction"] < 0.01 * float(spread)


def test_fit_is_seeded_and_refuses_a_quantiser_with_hidden_layers():
    inputs = _two_sources()
    a, b = DualRQVAE(_shape()), DualRQVAE(_shape())
    fit_rqkmeans(a, inputs, 10, torch.Generator().manual_seed(5))
    fit_rqkmeans(b, inputs, 10, torch.Generator().manual_seed(5))
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    with pytest.raises(ValueError, match="without hidden layers"):
        fit_rqkmeans(DualRQVAE(_shape(hidden_dims=(8,))), inputs, 10, torch.Generator().manual_seed(5))
