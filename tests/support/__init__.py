"""What the tests share and are not tests themselves: tiny projects, synthetic data, the runtime section, a
toy DVC project, a local Prefect server, broken contract fixtures. Imported as ``support.<module>``
(pyproject puts ``tests/`` on the path), so a test reads the same wherever it sits."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]  # the checkout: params.yaml, dvc.yaml, data_contracts/
FIXTURES = REPO / "tests" / "fixtures"  # small source files in every format the ingest stage reads
SHARED_DATA = REPO.parent / "shared" / "data"  # real datasets beside the checkout, when present
