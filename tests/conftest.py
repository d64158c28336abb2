import os

import pytest
import torch

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared")
OPENKBP_SAMPLE = os.path.abspath(os.path.join(SHARED, "data", "openkbp-sample"))


@pytest.fixture(autouse=True)
def _deterministic_threads():
    # Two cores: keep each test's torch small and reproducible.
    torch.manual_seed(0)
    yield


def require_openkbp_sample() -> str:
    if not os.path.isdir(OPENKBP_SAMPLE):
        pytest.skip(f"real OpenKBP sample not found at {OPENKBP_SAMPLE} (../shared is absent on this machine)")
    return OPENKBP_SAMPLE
