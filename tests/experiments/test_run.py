"""``run(cfg)`` at tiny sizes: every file in the run directory, a report that parses, a user's CSV."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd


class _Headings(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.h2: list[str] = []
        self.scripts = 0
        self._in_h2 = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self._in_h2 = tag == "h2"
        self.scripts += tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_h2 = False if tag == "h2" else self._in_h2

    def handle_data(self, data: str) -> None:
        if self._in_h2:
            self.h2.append(data.strip())


def test_default_run_writes_every_file(compose, tmp_path: Path, capsys) -> None:
    from neurograph.engine import Engine
    from neurograph.experiments.report import TITLES
    from neurograph.experiments.runner import run

    summary = run(compose("experiment=default"))
    run_dir = tmp_path / "run"
    for name in ("config.yaml", "metrics.jsonl", "results.json", "report.html"):
        assert (run_dir / name).is_file(), name
    assert list((run_dir / "store" / "snapshots").glob("*.safetensors"))
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    stream = [r for r in rows if r["phase"] == "stream"]
    assert len(stream) == 3 and all("novel_rate" in r and "total_energy" in r for r in stream)
    assert [r["phase"] for r in rows][-1] == "summary"
    assert any(r["phase"] == "eval" and r["method"].startswith("k-means") for r in rows)
    assert 0.0 <= summary["objective"] <= 1.0
    parser = _Headings()
    parser.feed((run_dir / "report.html").read_text())
    assert parser.h2 == ["what the level-1 fields contain", *TITLES]
    assert parser.scripts >= len(TITLES)
    assert "report: " in capsys.readouterr().out
    again = Engine.open(run_dir / "store")
    assert again.stats()["tokens"] == sum(summary["tokens_per_level"])
    again.close()


def test_a_text_run_names_its_fields_by_their_topics(compose, tmp_path: Path) -> None:
    """The signals carry their topic as the label and their text as the payload, so the run can say what
    each field contains (``fields.csv``, ``results.json``, the report)."""
    from neurograph.experiments.runner import run
    from neurograph.experiments.sources import topics_corpus

    run(compose("experiment=text_topics", "encoder=hashed", "dataset.n=null"))
    run_dir = tmp_path / "run"
    _, _, topics = topics_corpus()
    fields = pd.read_csv(run_dir / "fields.csv")
    assert len(fields) >= 1 and set(fields["name"]) <= set(topics)
    assert fields["labels"].str.len().min() > 0 and (fields["purity"] > 0).all()
    assert fields["nearest"].notna().all()  # the text of the token nearest each centre
    results = json.loads((run_dir / "results.json").read_text())
    assert [f["id"] for f in results["fields"]] == fields["id"].tolist()
    assert "what the level-1 fields contain" in (run_dir / "report.html").read_text()


def test_users_csv_runs_end_to_end(compose, tmp_path: Path) -> None:
    from neurograph.experiments.runner import run

    rng = np.random.default_rng(0)
    centres = rng.normal(0, 5, (3, 12))
    labels = rng.integers(0, 3, 150)
    frame = pd.DataFrame(
        centres[labels] + rng.normal(0, 0.3, (150, 12)), columns=[f"f{i}" for i in range(12)]
    )
    frame["kind"] = np.array(["a", "b", "c"])[labels]
    path = tmp_path / "mine.csv"
    frame.to_csv(path, index=False)
    summary = run(
        compose("dataset=file", f"dataset.path={path}", "dataset.label_column=kind", "dataset.n=null")
    )
    run_dir = tmp_path / "run"
    assert summary["signals"] == 150 and summary["dataset"] == "file:mine.csv"
    proj = np.load(run_dir / "projection.npz")
    assert proj["components"].shape == (8, 12)
    assert (run_dir / "report.html").is_file()
