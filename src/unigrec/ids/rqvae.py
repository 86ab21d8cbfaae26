"""RQ-VAE with shared and source-specific codebooks (GenSAR, docs/design.md §3), as a plain torch module.

One MLP encoder per input source; the latents are concatenated and quantised residually by the shared
levels; what is left is split back into one slice per source, each quantised by its own specific
levels. A single-source model (TIGER-style ablation) is the same module with one source and no shared
levels. Each decoder reads only its own slice of the quantised latent, so a source's reconstruction is a
function of that source's ID (shared codes + its specific codes) alone.
"""

from __future__ import annotations

import dataclasses
import itertools

import torch
from torch import nn

from unigrec.ids.artefacts import SOURCE_PREFIX
from unigrec.ids.kmeans import kmeans, nearest_centroid


def residual_quantize(
    x: torch.Tensor, codebooks: list[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """Quantise ``x`` level by level, each level coding what the previous ones left over.

    Returns codes ``(n, L)``, the summed quantisation ``(n, d)`` and the residual that entered each level
    (its distances to the level's codewords are the costs of re-assigning that level's codes).
    """
    residual = x
    codes, inputs = [], []
    total = torch.zeros_like(x)
    for book in codebooks:
        inputs.append(residual)
        idx, _ = nearest_centroid(residual, book)
        # Detached: a codeword is trained only by its own level's codebook loss, not by later levels.
        chosen = book[idx].detach()
        codes.append(idx)
        total = total + chosen
        residual = residual - chosen
    stacked = torch.stack(codes, dim=1) if codes else torch.zeros((x.shape[0], 0), dtype=torch.long)
    return stacked, total, inputs


def mlp(dims: list[int]) -> nn.Sequential:
    """Linear layers with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (d_in, d_out) in enumerate(itertools.pairwise(dims)):
        layers.append(nn.Linear(d_in, d_out))
        if i < len(dims) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


@dataclasses.dataclass
class QuantiserOutput:
    codes: dict[str, torch.Tensor]  # level name -> (n,) code indices
    level_inputs: dict[str, torch.Tensor]  # level name -> residual that level quantised
    latent: torch.Tensor  # concatenated encoder output (n, S*latent_dim)
    quantised: torch.Tensor  # sum of chosen codewords, same shape
    reconstructions: dict[str, torch.Tensor]  # source -> decoder output through the straight-through latent
    codebook_loss: torch.Tensor  # ||sg(r) - q||^2, trains the codewords
    commitment_loss: torch.Tensor  # ||r - sg(q)||^2, keeps the encoder near its codes


@dataclasses.dataclass(frozen=True)
class QuantiserShape:
    """Everything needed to rebuild the module before loading its weights."""

    input_dims: dict[str, int]  # source -> input width; order = concatenation order
    latent_dim: int
    hidden_dims: tuple[int, ...]
    shared_levels: int
    shared_codebook_size: int
    specific_levels: int
    specific_codebook_size: int


class DualRQVAE(nn.Module):
    def __init__(self, shape: QuantiserShape) -> None:
        super().__init__()
        self.shape = shape
        self.sources = list(shape.input_dims)
        d = shape.latent_dim
        hidden = list(shape.hidden_dims)
        self.encoders = nn.ModuleDict(
            {s: mlp([dim, *hidden, d]) for s, dim in shape.input_dims.items()}
        )
        self.decoders = nn.ModuleDict(
            {s: mlp([d, *reversed(hidden), dim]) for s, dim in shape.input_dims.items()}
        )
        joint = d * len(self.sources)
        books: dict[str, nn.Parameter] = {}
        for i in range(shape.shared_levels):
            books[f"shared_{i}"] = nn.Parameter(torch.zeros(shape.shared_codebook_size, joint))
        for s in self.sources:
            for i in range(shape.specific_levels):
                books[f"{SOURCE_PREFIX[s]}_{i}"] = nn.Parameter(torch.zeros(shape.specific_codebook_size, d))
        self.codebooks = nn.ParameterDict(books)

    # ------------------------------------------------------------------ structure
    @property
    def shared_names(self) -> list[str]:
        return [f"shared_{i}" for i in range(self.shape.shared_levels)]

    def specific_names(self, source: str) -> list[str]:
        return [f"{SOURCE_PREFIX[source]}_{i}" for i in range(self.shape.specific_levels)]

    def level_sizes(self) -> dict[str, int]:
        return {name: int(book.shape[0]) for name, book in self.codebooks.items()}

    def _slice(self, t: torch.Tensor, source: str) -> torch.Tensor:
        d = self.shape.latent_dim
        i = self.sources.index(source)
        return t[:, i * d : (i + 1) * d]

    # ------------------------------------------------------------------ passes
    def encode(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([self.encoders[s](inputs[s]) for s in self.sources], dim=1)

    def decode(self, latent: torch.Tensor) -> dict[str, torch.Tensor]:
        return {s: self.decoders[s](self._slice(latent, s)) for s in self.sources}

    def quantise_latent(
        self, latent: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], torch.Tensor]:
        """Shared levels on the joint latent, then specific levels on each source's residual slice."""
        codes: dict[str, torch.Tensor] = {}
        level_inputs: dict[str, torch.Tensor] = {}
        shared_books = [self.codebooks[n] for n in self.shared_names]
        shared_codes, shared_q, shared_in = residual_quantize(latent, shared_books)
        for j, name in enumerate(self.shared_names):
            codes[name], level_inputs[name] = shared_codes[:, j], shared_in[j]
        residual = latent - shared_q
        parts = []
        for s in self.sources:
            names = self.specific_names(s)
            spec_codes, spec_q, spec_in = residual_quantize(
                self._slice(residual, s), [self.codebooks[n] for n in names]
            )
            for j, name in enumerate(names):
                codes[name], level_inputs[name] = spec_codes[:, j], spec_in[j]
            parts.append(spec_q)
        return codes, level_inputs, shared_q + torch.cat(parts, dim=1)

    def forward(self, inputs: dict[str, torch.Tensor]) -> QuantiserOutput:
        latent = self.encode(inputs)
        codes, level_inputs, quantised = self.quantise_latent(latent)
        codebook_loss = latent.new_zeros(())
        commitment_loss = latent.new_zeros(())
        # Per-level losses on each level's own residual, so every codebook is trained on what it codes.
        for name, residual in level_inputs.items():
            # F.embedding rather than indexing: deterministic gradient accumulation across threads.
            chosen = nn.functional.embedding(codes[name], self.codebooks[name])
            codebook_loss = codebook_loss + ((residual.detach() - chosen) ** 2).sum(1).mean()
            commitment_loss = commitment_loss + ((residual - chosen.detach()) ** 2).sum(1).mean()
        # Straight-through estimator: the decoder sees the quantised latent, gradients reach the encoder.
        straight_through = latent + (quantised - latent).detach()
        return QuantiserOutput(
            codes=codes,
            level_inputs=level_inputs,
            latent=latent,
            quantised=quantised,
            reconstructions=self.decode(straight_through),
            codebook_loss=codebook_loss,
            commitment_loss=commitment_loss,
        )

    @torch.no_grad()
    def latent_from_codes(self, codes: dict[str, torch.Tensor]) -> torch.Tensor:
        """Quantised latent an ID stands for: the sum of its codewords, each in its own slice."""
        n = len(next(iter(codes.values())))
        latent = torch.zeros(n, self.shape.latent_dim * len(self.sources))
        for name in self.shared_names:
            latent += self.codebooks[name][codes[name]]
        d = self.shape.latent_dim
        for i, s in enumerate(self.sources):
            for name in self.specific_names(s):
                latent[:, i * d : (i + 1) * d] += self.codebooks[name][codes[name]]
        return latent

    @torch.no_grad()
    def initialise_codebooks(
        self, inputs: dict[str, torch.Tensor], iters: int, generator: torch.Generator
    ) -> None:
        """k-means each level on the residuals the previous (already initialised) levels leave."""
        latent = self.encode(inputs)
        residual = latent
        for name in self.shared_names:
            self.codebooks[name].copy_(kmeans(residual, self.codebooks[name].shape[0], iters, generator))
            idx, _ = nearest_centroid(residual, self.codebooks[name])
            residual = residual - self.codebooks[name][idx]
        for s in self.sources:
            part = self._slice(residual, s)
            for name in self.specific_names(s):
                self.codebooks[name].copy_(kmeans(part, self.codebooks[name].shape[0], iters, generator))
                idx, _ = nearest_centroid(part, self.codebooks[name])
                part = part - self.codebooks[name][idx]
