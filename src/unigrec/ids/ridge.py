"""Closed-form ridge regression: predicts a collaborative vector from a text vector.

Items with no training events (and cold-start items) have no collaborative embedding; the best guess
available is "what warm items with similar text look like", a linear map fitted on warm items.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class LinearMap:
    weight: np.ndarray  # (d_in, d_out)
    bias: np.ndarray  # (d_out,)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (x @ self.weight + self.bias).astype(np.float32)


def fit_ridge(x: np.ndarray, y: np.ndarray, lam: float) -> LinearMap:
    """Minimise ``||X W + b - Y||^2 + lam ||W||^2`` (bias unpenalised, via centring).

    The centred data stay in the inputs' dtype (float64 copies of a 100k x 384 matrix cost ~0.8 GB);
    only the small (d x d) normal equations are solved in float64.
    """
    x_mean, y_mean = x.mean(0, dtype=np.float64), y.mean(0, dtype=np.float64)
    xc = x - x_mean.astype(x.dtype)
    yc = y - y_mean.astype(y.dtype)
    gram = (xc.T @ xc).astype(np.float64) + lam * np.eye(x.shape[1])
    weight = np.linalg.solve(gram, (xc.T @ yc).astype(np.float64))
    return LinearMap(weight=weight.astype(np.float32), bias=(y_mean - x_mean @ weight).astype(np.float32))
