import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import torch  # noqa: E402

torch.set_num_threads(2)

import pytest  # noqa: E402


@pytest.fixture(scope="module")
def one_torch_thread():
    """One BLAS thread for a module of small forward passes (batch-1 32x32 U-Net, tiny Gaussian
    problems): as fast as two, and free of oversubscription stalls on a loaded 2-core machine.
    Use with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
