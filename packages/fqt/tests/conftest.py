"""One torch thread for this package's tests (restored after each): the small tensors here run
fastest single-threaded, and a shared CPU with other jobs oversubscribes two threads badly."""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
