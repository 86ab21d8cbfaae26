"""MLflow model registry with a champion gate: log a candidate with its lineage, register a new version,
and move the serving alias only when the candidate beats the champion on the same evaluation data.

Nothing here imports mlflow at module level, so the CLI and the other stages start fast.
"""
