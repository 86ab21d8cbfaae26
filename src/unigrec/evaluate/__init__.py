"""Evaluation: metric functions, protocols and baselines."""
