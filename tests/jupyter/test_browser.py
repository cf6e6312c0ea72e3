"""The tutorial in a real JupyterLab, driven by the Debian ``chromium`` through Playwright.

The test starts JupyterLab on 127.0.0.1 (a free port, no token, every Jupyter directory in a temp dir,
the tutorial copied there), opens the tutorial, runs all cells from the *Run* menu, and checks that no
cell shows an error, in the page and in the notebook as saved. Then it screenshots the Dashboard's
token-space plot (WebGL, rendered by SwiftShader: ``--enable-unsafe-swiftshader``) and counts the
pixels that are neither background nor grid: the coloured markers of the tokens.

Skipped, saying why, without chromium or playwright; ``make test`` installs chromium (apt) first, so
CI runs it. ``NEUROGRAPH_SCREENSHOTS=<dir>`` keeps the screenshots there (``benchmarks/results/`` holds
the committed ones).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
import urllib.request
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None, reason="the Debian chromium package is not installed (apt-get install -y chromium)"
    ),
]
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install -e .[dev])"
)
pytest.importorskip("jupyterlab", reason="jupyterlab is not installed (pip install -e .[dev])")

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = ROOT / "notebooks" / "tutorial.ipynb"
RUN_TIMEOUT_S = 300
KERNEL_IDLE = (  # the status bar reads "Python 3 (ipykernel) | Idle"
    "() => [...document.querySelectorAll('.jp-StatusBar-TextItem')].some(e => /[|] Idle/.test(e.textContent))"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A JupyterLab server of its own: ``(base url, notebook dir)``."""
    tmp = tmp_path_factory.mktemp("lab")
    notebooks, settings = tmp / "notebooks", tmp / "settings"
    notebooks.mkdir()
    shutil.copy(TUTORIAL, notebooks / "tutorial.ipynb")
    tracker = settings / "@jupyterlab" / "notebook-extension"
    tracker.mkdir(parents=True)
    # every cell rendered (not only those in view) so the page can be checked whole; no news pop-up
    (tracker / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    apputils = settings / "@jupyterlab" / "apputils-extension"
    apputils.mkdir(parents=True)
    (apputils / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(tmp / "config"),
        "JUPYTER_DATA_DIR": str(tmp / "data"),
        "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "workspaces"),
        "IPYTHONDIR": str(tmp / "ipython"),
        "TQDM_DISABLE": "1",
    }
    port = free_port()
    log = (tmp / "lab.log").open("w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--allow-root",
            "--ip=127.0.0.1",
            f"--port={port}",
            "--ServerApp.token=",
            "--ServerApp.password=",
            f"--ServerApp.root_dir={notebooks}",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail("JupyterLab did not start:\n" + (tmp / "lab.log").read_text()[-3000:])
            time.sleep(0.5)
        yield url, notebooks
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def test_tutorial_runs_in_jupyterlab_and_the_dashboard_draws(lab: tuple[str, Path], tmp_path: Path) -> None:
    url, notebooks = lab
    shots = Path(os.environ.get("NEUROGRAPH_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--enable-unsafe-swiftshader",
                "--use-angle=swiftshader",
                "--ignore-gpu-blocklist",
            ],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        page.goto(f"{url}/lab/tree/tutorial.ipynb")
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
        page.wait_for_function(KERNEL_IDLE, timeout=120_000)  # the kernel started: cells can run

        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        code_cells = page.locator(".jp-Notebook .jp-CodeCell")
        n_code = code_cells.count()
        assert n_code >= 15
        page.wait_for_function(
            """(n) => {
                const prompts = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')];
                return prompts.length === n && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
            }""",
            arg=n_code,
            timeout=RUN_TIMEOUT_S * 1000,
        )
        page.wait_for_function(KERNEL_IDLE, timeout=60_000)

        # no error in the page: tracebacks render as stderr outputs
        errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
        texts = [errors.nth(i).inner_text() for i in range(errors.count())]
        assert not [t for t in texts if "Traceback" in t or "Error" in t], texts

        # ... nor in the notebook as saved
        page.keyboard.press("Control+s")
        saved = read_when_saved(notebooks / "tutorial.ipynb", n_code)
        outputs = [o for c in saved["cells"] if c["cell_type"] == "code" for o in c["outputs"]]
        assert not [o for o in outputs if o["output_type"] == "error"]
        html = ["".join(o["data"]["text/html"]) for o in outputs if "text/html" in o.get("data", {})]
        assert any("EmitResult: token" in h for h in html)  # the rich tables were drawn

        # the Dashboard's token space, drawn with WebGL
        panel = page.locator(".neurograph-dashboard .js-plotly-plot").first
        panel.scroll_into_view_if_needed()
        area = page.locator(".neurograph-dashboard .js-plotly-plot .nsewdrag[data-subplot='xy']").first
        area.wait_for(state="attached", timeout=60_000)
        page.wait_for_timeout(1500)  # WebGL draws after the layout
        box = area.bounding_box()
        assert box is not None and box["width"] > 100 and box["height"] > 100
        png = page.screenshot(clip=box, path=str(shots / "jupyter_dashboard_token_space.png"))
        page.locator(".neurograph-dashboard").first.screenshot(path=str(shots / "jupyter_dashboard.png"))
        browser.close()
    width, height, pixels = decode_png(png)
    coloured = count_coloured(pixels)
    assert coloured > 200, f"{coloured} coloured pixels of {width * height} in the token-space plot"


def read_when_saved(path: Path, n_code: int, timeout: float = 60.0) -> dict:
    """The notebook on disk once every code cell in it has run (the save lands a moment later)."""
    deadline = time.monotonic() + timeout
    while True:
        nb = json.loads(path.read_text())
        counts = [c["execution_count"] for c in nb["cells"] if c["cell_type"] == "code"]
        if len(counts) == n_code and all(n is not None for n in counts):
            return nb
        assert time.monotonic() < deadline, f"the notebook was not saved after running: {counts}"
        time.sleep(0.5)


# --- a PNG decoder (8-bit RGB / RGBA, what Chromium writes) and the pixel count ----------------------
def decode_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """``(width, height, rows)``: each row the raw RGB(A) bytes, filters undone."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            up = prev[i]
            corner = prev[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                pa, pb, pc = abs(up - corner), abs(left - corner), abs(left + up - 2 * corner)
                pred = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + pred) & 0xFF
        rows.append(bytes(line) if bpp == 3 else bytes(b for j, b in enumerate(line) if j % 4 != 3))
        prev = line
    return width, height, rows


def count_coloured(rows: list[bytes]) -> int:
    """Pixels with a clear hue: not the white background, not the grey grid lines or axes."""
    count = 0
    for row in rows:
        for i in range(0, len(row), 3):
            r, g, b = row[i], row[i + 1], row[i + 2]
            if max(r, g, b) - min(r, g, b) > 40:
                count += 1
    return count
