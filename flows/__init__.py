"""Prefect flows that orchestrate the DVC pipeline (stage logic lives in ``unigrec``)."""
