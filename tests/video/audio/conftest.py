import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    # These tests run many small tensor ops; on a busy 2-core machine torch's intra-op thread pool makes each
    # one orders of magnitude slower (1 ms -> 1 s for an fbank), so they run single-threaded.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
