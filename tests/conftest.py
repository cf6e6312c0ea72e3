"""Shared fixtures: a ``device`` fixture that runs a test on the CPU and, when present, on CUDA; ``spans``
(neurograph's OpenTelemetry spans into an in-memory exporter) and ``log_lines`` (the ``neurograph``
logger's JSON lines, parsed)."""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

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


@pytest.fixture
def spans() -> Iterator[Any]:
    """An ``InMemorySpanExporter`` receiving neurograph's spans during the test."""
    sdk = pytest.importorskip("opentelemetry.sdk.trace.export.in_memory_span_exporter")
    from neurograph import telemetry

    exporter = sdk.InMemorySpanExporter()
    telemetry.configure_tracing(exporter)
    yield exporter
    telemetry.configure_tracing(enabled=False)


@pytest.fixture
def log_lines() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """``log_lines()``: the JSON lines the ``neurograph`` logger wrote so far (DEBUG and up), parsed."""
    pytest.importorskip("structlog")
    from neurograph import logs

    buf = io.StringIO()
    handler = logs.configure(json=True, level="DEBUG", stream=buf)
    yield lambda: [json.loads(line) for line in buf.getvalue().splitlines()]
    logging.getLogger("neurograph").removeHandler(handler)
    logging.getLogger("neurograph").setLevel(logging.WARNING)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU; none is available here")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
