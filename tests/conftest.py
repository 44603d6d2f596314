"""Fixtures shared by every test."""
import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """Run on one intra-op thread (restored afterwards).

    Most tests do thousands of operations on tensors of a few hundred numbers; on a
    loaded 2-core CI machine (and under pytest-xdist) intra-op parallelism makes each op up to
    100x slower instead of faster.
    """
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
