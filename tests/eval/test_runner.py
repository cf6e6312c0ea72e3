"""The evaluation runner and the script: a real run on small data, its report and files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from neurograph.datasets import load
from neurograph.eval import EmergenceRun, format_table, preset_cdna, run_emergence

ROOT = Path(__file__).resolve().parents[2]


def test_run_emergence_on_blobs():
    report = run_emergence(EmergenceRun(dataset="blobs", chunks=2, som_iterations=500))
    fields = report["results"][0]
    assert fields["method"] == "emergent fields, level 1" and fields["nmi"] >= 0.95
    assert report["goal_met"] and report["best_baseline"]["nmi"] <= fields["nmi"] + 1e-9
    methods = [r["method"] for r in report["results"]]
    assert any(m.startswith("k-means, k = classes") for m in methods)
    assert any(m.startswith("HDBSCAN") for m in methods) and any(m.startswith("MiniSom") for m in methods)
    assert report["stability"]["idle_rebuild"]["ari"] == 1.0
    hdb = next(r for r in report["results"] if r["method"].startswith("HDBSCAN"))
    assert report["hdbscan_covered"] == {
        "method": hdb["method"],
        "nmi_covered": hdb["nmi_covered"],
        "coverage": hdb["coverage"],
    }
    assert report["goal_measure"].startswith("nmi (full coverage")
    assert {"platform", "cpu", "torch", "numpy", "device"} <= set(report["machine"])
    json.dumps(report, default=float)  # JSON-able
    table = format_table(report)
    assert table.count("\n") == len(report["results"]) + 1 and "emergent fields, level 1" in table


def test_presets():
    x, _ = load("iris")
    scaled = preset_cdna("scaled", x, {"field_persistence": 2.0})
    assert scaled.novelty_threshold == pytest.approx(scaled.neighbor_radius / 2, rel=1e-4)
    assert scaled.field_persistence == 2.0 and preset_cdna("default", x).novelty_threshold == 0.1
    with pytest.raises(ValueError, match="preset"):  # InvalidArgument is a ValueError
        preset_cdna("nope", x)


@pytest.mark.slow
def test_the_script_writes_its_table_and_json(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "eval_emergence.py"),
            "--dataset",
            "iris",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    assert "| emergent fields, level 1 |" in out.stdout
    report = json.loads((tmp_path / "eval_emergence_iris.json").read_text())
    assert report["dataset"] == "iris" and report["results"][0]["nmi"] > 0.5
    assert report["default_cdna"]["results"] and "table" in report
    md = (tmp_path / "eval_emergence_iris.md").read_text()
    assert "| method |" in md and "HDBSCAN over the points it clusters" in md and "full-coverage NMI" in md
