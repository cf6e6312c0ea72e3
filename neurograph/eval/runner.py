"""Do knowledge structures emerge? One evaluation run: the engine's fields against labels and baselines.

:func:`run_emergence` streams a labelled data set (:mod:`neurograph.datasets`: 8-D inputs) through an
:class:`~neurograph.engine.Engine` in ``chunks`` batches of ``emit_batch``; after each chunk it optionally
runs ``steps`` of the force-field dynamics (when the engine has them) and rebuilds the hierarchy, so
that field *stability over time* can be measured between consecutive rebuilds. Each sample is then
labelled by the level-1 field above the token it became (its ``emit`` result's ``token_id``), and by
the level-2 field. The baselines run on the same 8-D inputs, in the same process:

- k-means with the number of level-1 fields found, and with the true number of classes;
- HDBSCAN with ``min_cluster_size`` = the CDNA's ``min_field_size`` (noise = -1);
- MiniSom: a 1 x k map with the true number of classes as units, and a square map with about as many
  units as level-1 fields found.

Scores: NMI, ARI, purity, coverage and NMI over the covered samples (:mod:`neurograph.eval.metrics`),
plus nesting consistency and stability for the fields, and wall times.

CDNA presets (the default profile's neighbourhood sizes suit signals spread over the whole box, not the
spacing of a given data set): ``default`` is the default profile as is; ``auto`` (alias ``scaled``) is
:meth:`CDNA.calibrate(x) <neurograph.cdna.CDNA.calibrate>`: the neighbour radius is the median
nearest-neighbour distance of the data, the novelty threshold half of it, the token radius a quarter (so
that the soft-sphere repulsion of the dynamics acts only between tokens closer than the threshold), every
other length scaled alike and the box fitted to the data. Overrides are applied on top of the preset.
"""

from __future__ import annotations

import itertools
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from neurograph.cdna import CDNA
from neurograph.datasets import load
from neurograph.engine import Engine
from neurograph.errors import InvalidArgument
from neurograph.eval.baselines import hdbscan_labels, kmeans_labels, som_labels
from neurograph.eval.metrics import cluster_scores, field_stability, nesting_consistency
from neurograph.hierarchy.view import Hierarchy

__all__ = ["PRESETS", "EmergenceRun", "format_table", "machine_info", "preset_cdna", "run_emergence"]

CHANNEL_TYPE = "signal.input.external.eval.sample"  # event type of the streamed samples
PRESETS = ("default", "auto", "scaled")  # scaled: the earlier name of auto


@dataclass(frozen=True)
class EmergenceRun:
    """What to evaluate (every field has a comment on its default)."""

    dataset: str = "digits"  # digits | iris | blobs
    preset: str = "auto"  # default | auto (see the module docstring)
    overrides: Mapping[str, Any] = field(default_factory=dict)  # CDNA fields on top of the preset
    chunks: int = 4  # emit_batch calls; the hierarchy is rebuilt after each (stability over time)
    steps: int = 0  # dynamics steps after each chunk (only when the engine has step())
    seed: int = 0  # engine, k-means, SOM and the sample order
    shuffle: bool = True  # stream the samples in a seeded random order
    device: str = "cpu"
    som_iterations: int = 5000  # MiniSom training iterations
    baselines: bool = True  # run the baselines too (off for sweeps over the engine's settings)


def preset_cdna(preset: str, x: np.ndarray, overrides: Mapping[str, Any] | None = None) -> CDNA:
    """The CDNA of a preset for data ``x [n, 8]`` (module docstring), with ``overrides`` applied."""
    if preset not in PRESETS:
        raise InvalidArgument("preset", preset, f"must be one of {list(PRESETS)}")
    cdna = CDNA() if preset == "default" else CDNA.calibrate(x)
    return cdna.replace(**overrides) if overrides else cdna


def run_emergence(run: EmergenceRun, log: Callable[[str], Any] | None = None) -> dict[str, Any]:
    """Run one evaluation (module docstring) and return its report (JSON-able)."""
    say = log or (lambda _msg: None)
    x, labels = load(run.dataset)
    k_true = int(np.unique(labels).size)
    order = np.random.default_rng(run.seed).permutation(len(x)) if run.shuffle else np.arange(len(x))
    x, labels = x[order], labels[order]
    cdna = preset_cdna(run.preset, x, run.overrides)
    eng = Engine(run.device, cdna=cdna, seed=run.seed)
    dynamics = run.steps > 0 and hasattr(eng, "step")
    token_ids = np.zeros(len(x), np.int64)
    snapshots: list[Hierarchy] = []
    t_emit = t_steps = t_hier = 0.0
    for rows in np.array_split(np.arange(len(x)), run.chunks):
        t0 = time.perf_counter()
        token_ids[rows] = eng.emit_batch(CHANNEL_TYPE, x[rows]).token_ids.numpy()
        t1 = time.perf_counter()
        if dynamics:
            eng.step(run.steps)
        t2 = time.perf_counter()
        snapshots.append(eng.hierarchy())
        t3 = time.perf_counter()
        t_emit, t_steps, t_hier = t_emit + t1 - t0, t_steps + t2 - t1, t_hier + t3 - t2
        say(f"chunk of {rows.size}: {snapshots[-1]!r}")
    t0 = time.perf_counter()
    final = eng.hierarchy()  # nothing moved since the last rebuild: measures the cost and the id stability
    t_idle = time.perf_counter() - t0
    rows: list[dict[str, Any]] = []
    fields1 = final.ancestors(token_ids, 1)
    rows.append(_row("emergent fields, level 1", fields1, labels, t_emit + t_steps + t_hier))
    if final.n_levels > 2:
        rows.append(_row("emergent fields, level 2", final.ancestors(token_ids, 2), labels, math.nan))
    k_found = max(1, rows[0]["clusters"])
    grid = (max(1, math.isqrt(k_found)), math.ceil(k_found / max(1, math.isqrt(k_found))))  # ~k_found units
    baselines = (
        (f"k-means, k = fields found ({k_found})", lambda: kmeans_labels(x, k_found, run.seed)),
        (f"k-means, k = classes ({k_true})", lambda: kmeans_labels(x, k_true, run.seed)),
        (
            f"HDBSCAN, min_cluster_size = {cdna.min_field_size}",
            lambda: hdbscan_labels(x, cdna.min_field_size),
        ),
        (f"MiniSom 1 x {k_true}", lambda: som_labels(x, (1, k_true), run.seed, run.som_iterations)),
        (f"MiniSom {grid[0]} x {grid[1]}", lambda: som_labels(x, grid, run.seed, run.som_iterations)),
    )
    n_field_rows = len(rows)
    for name, fn in baselines if run.baselines else ():
        say(f"baseline: {name}")
        t0 = time.perf_counter()
        pred = fn()
        rows.append(_row(name, pred, labels, time.perf_counter() - t0))
    best = max(rows[n_field_rows:], key=lambda r: r["nmi"]) if run.baselines else None
    return {
        "dataset": run.dataset,
        "samples": len(x),
        "classes": k_true,
        "run": {**asdict(run), "overrides": dict(run.overrides)},
        "cdna": {k: v for k, v in cdna.to_dict().items() if k in _REPORTED},
        "cdna_hash": cdna.hash,
        "dynamics": {"steps_per_chunk": run.steps if dynamics else 0, "available": hasattr(eng, "step")},
        "tokens_per_level": final.sizes(),
        "results": rows,
        "best_baseline": {"method": best["method"], "nmi": best["nmi"]} if best else None,
        # the goal compares full-coverage NMI (noise counts as one group); HDBSCAN's NMI over the points it
        # clusters is reported beside it, since it is the figure HDBSCAN is usually quoted with
        "goal_measure": "nmi (full coverage: uncovered points count as one group)",
        "hdbscan_covered": next(
            (
                {"method": r["method"], "nmi_covered": r["nmi_covered"], "coverage": r["coverage"]}
                for r in rows[n_field_rows:]
                if r["method"].startswith("HDBSCAN")
            ),
            None,
        ),
        "goal_met": rows[0]["nmi"] >= best["nmi"] - 1e-9
        if best
        else None,  # NMI of equal labellings: 1 +- ulp
        "stability": {
            "between_chunks": [field_stability(a, b) for a, b in itertools.pairwise(snapshots)],
            "idle_rebuild": field_stability(snapshots[-1], final),
        },
        "nesting": nesting_consistency(final),
        "seconds": {"emit": t_emit, "dynamics": t_steps, "hierarchy": t_hier, "idle_rebuild": t_idle},
        "machine": machine_info(run.device),
    }


_REPORTED = (
    "novelty_threshold",
    "neighbor_radius",
    "max_neighbors",
    "learning_rate",
    "max_levels",
    "min_field_size",
    "field_neighbors",
    "field_persistence",
    "field_link_confidence",
    "field_overlap",
    "radius_max",
    "token_radius",
)


def _row(method: str, pred: np.ndarray, labels: np.ndarray, seconds: float) -> dict[str, Any]:
    return {"method": method, **cluster_scores(labels, pred), "seconds": seconds}


def format_table(report: Mapping[str, Any]) -> str:
    """The results of a report as a plain-text table (also valid Markdown)."""
    head = "| method | groups | coverage | NMI | ARI | purity | NMI covered | seconds |"
    lines = [head, "|" + "---|" * 8]
    for r in report["results"]:
        secs = "" if r["seconds"] != r["seconds"] else f"{r['seconds']:.2f}"
        lines.append(
            f"| {r['method']} | {r['clusters']} | {r['coverage']:.3f} | {r['nmi']:.3f} | {r['ari']:.3f} | "
            f"{r['purity']:.3f} | {r['nmi_covered']:.3f} | {secs} |"
        )
    return "\n".join(lines)


def machine_info(device: str = "cpu") -> dict[str, Any]:
    """Where a result was measured: platform, CPU model, threads, library versions, device."""
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import sklearn

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "sklearn": sklearn.__version__,
        "device": device,
    }
    try:
        from importlib.metadata import version

        info["minisom"] = version("minisom")
    except Exception:  # the metadata of a plain-module install may be missing
        info["minisom"] = "unknown"
    if torch.device(device).type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info
