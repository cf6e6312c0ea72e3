"""Shared fixtures: a ``device`` fixture that runs a test on the CPU and, when present, on CUDA."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

os.environ.setdefault("TQDM_DISABLE", "1")

_DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=_DEVICES)
def device(request: pytest.FixtureRequest) -> str:
    """Every device this machine has (CUDA tests are skipped cleanly without a GPU)."""
    return request.param


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU; none is available here")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
