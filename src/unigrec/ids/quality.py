"""Quality figures of an ID assignment: codebook usage, perplexity, reconstruction error."""

from __future__ import annotations

import numpy as np


def code_counts(codes: np.ndarray, size: int) -> np.ndarray:
    """How many items use each of the ``size`` values of one level."""
    return np.bincount(codes.astype(np.int64), minlength=size)


def usage_stats(codes: np.ndarray, size: int) -> dict[str, float]:
    """Utilisation (share of codes used at least once) and perplexity (exp of the usage entropy).

    Perplexity equals ``size`` when every code is used equally and 1 when one code takes everything.
    """
    counts = code_counts(codes, size)
    p = counts[counts > 0] / counts.sum()
    return {
        "utilisation": float((counts > 0).mean()),
        "perplexity": float(np.exp(-(p * np.log(p)).sum())),
        "codes_used": int((counts > 0).sum()),
    }


def squared_error_sum(x: np.ndarray, x_hat: np.ndarray) -> float:
    """Summed squared reconstruction error. Divided by :func:`total_variance` it is 1 - R^2: 0 is
    perfect, 1 is no better than predicting every row as the mean row."""
    # Differences stay in the inputs' dtype (no float64 copy of a 100k x 384 matrix); sums are float64.
    return float(np.square(x - x_hat).sum(dtype=np.float64))


def total_variance(x: np.ndarray) -> float:
    """Summed squared distance of the rows to their mean row."""
    return squared_error_sum(x, x.mean(0, dtype=np.float64).astype(x.dtype))
