import os

import pytest
import torch

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared")
OPENKBP_SAMPLE = os.path.abspath(os.path.join(SHARED, "data", "openkbp-sample"))


def pytest_configure(config):
    # Tests never see a real dataset someone prepared in the repository's cache: `--data auto`
    # must resolve to the synthetic stand-ins unless a test points at real files itself.
    import tempfile
    os.environ["CTAN_DATA_CACHE"] = tempfile.mkdtemp(prefix="ctan-test-cache-")
    # Tiny tensors gain nothing from a second thread, and OpenMP threads that wait for a busy core
    # slow a forward pass from 50 ms to 4 s (measured): tests use one thread.
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _deterministic_threads():
    # Two cores: keep each test's torch small and reproducible.
    torch.manual_seed(0)
    yield


def require_openkbp_sample() -> str:
    if not os.path.isdir(OPENKBP_SAMPLE):
        pytest.skip(f"real OpenKBP sample not found at {OPENKBP_SAMPLE} (../shared is absent on this machine)")
    return OPENKBP_SAMPLE


PH2_SAMPLE = os.path.abspath(os.path.join(SHARED, "data", "ph2-sample"))
BUSI_SAMPLE = os.path.abspath(os.path.join(SHARED, "data", "busi-sample"))


def require_sample(path: str) -> str:
    """A real sample under ../shared/data, or skip saying where it was looked for."""
    if not os.path.isdir(path):
        pytest.skip(f"real sample not found at {path} (../shared is absent on this machine)")
    return path
