"""Plain-Python orchestration of the DVC pipeline: workspace lock, params overrides, experiment runs.

Prefect-free on purpose: the flows in ``flows/`` are thin wrappers, and everything here is testable
and usable without a Prefect server.
"""
