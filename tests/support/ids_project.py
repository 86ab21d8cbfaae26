"""Shared by the identifiers tests: run torch single-threaded while they execute.

The test machine's two cores are shared by parallel workers; torch's default of one thread per core
then spends most of each tiny step waiting on the other thread. Product code leaves threads alone.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def single_threaded_torch() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
