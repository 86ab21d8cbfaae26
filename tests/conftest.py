"""Shared pytest fixtures."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture()
def one_torch_thread():
    """Run a torch-heavy test on one intra-op thread, then restore the setting.

    CI's 2 cores are shared with the test runner itself: with 2 threads, torch's spin-waiting made tiny
    models 10x slower. Test-only: product code never changes the thread count globally.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
