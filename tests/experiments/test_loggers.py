"""W&B offline: a run with ``logger=wandb`` and no API key writes its files locally, with no network."""

from __future__ import annotations

from pathlib import Path

import pytest


def test_wandb_offline_run_writes_its_files(compose, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("wandb")
    from neurograph.experiments.runner import run

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)  # mode auto: offline because there is no key
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb_dir"))
    monkeypatch.setenv("WANDB_ERROR_REPORTING", "false")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc key either
    run(compose("logger=wandb", "report.enabled=false"))
    offline = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(offline) == 1
    assert list(offline[0].glob("*.wandb"))
    assert (tmp_path / "run" / "metrics.jsonl").is_file()
