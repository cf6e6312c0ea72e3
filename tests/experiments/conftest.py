"""Compose the real configs (``configs/``) with Hydra's compose API, shrunk by ``debug=tiny``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("hydra")
pytest.importorskip("plotly")

EXPERIMENTS = ("default", "text_topics", "scale", "scale_gpu", "ablation")


@pytest.fixture
def compose(tmp_path: Path) -> Callable[..., Any]:
    """``compose(*overrides)``: the root config with ``debug=tiny`` and ``output_dir`` in ``tmp_path``."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from neurograph.experiments.config import config_dir, register_configs

    register_configs()

    def make(*overrides: str, tiny: bool = True) -> Any:
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            extra = ["debug=tiny"] if tiny else []
            return hydra_compose("config", overrides=[*extra, f"output_dir={tmp_path / 'run'}", *overrides])

    yield make
    GlobalHydra.instance().clear()
