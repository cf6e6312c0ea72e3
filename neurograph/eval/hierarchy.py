"""Does the hierarchy find the structure at every scale? Fields of fields against nested labels (DESIGN §5).

:func:`run_hierarchy_eval` scores the engine's levels on data whose nesting is known and, in the same
run, the clustering baselines that see the same 8-D inputs:

- **data**: :func:`~neurograph.datasets.nested_groups` with 2 and 3 levels (:data:`NESTED_SUITE`: several
  branchings, spreads, ratios, noise levels and group sizes), each drawn with every seed; and the
  digits, whose classes are the truth of level 1 and whose level-2 grouping has no truth: it is shown
  as a table of the digit classes each level-2 field holds;
- **engine**: the calibrated default constitution (``CDNA.calibrate(x)``, nothing tuned per data set),
  the samples streamed in ``chunks`` ``emit_batch`` calls in a seeded random order, the hierarchy
  rebuilt after each; once without dynamics and once with ``steps`` dynamics steps after each batch
  (before its rebuild). A sample's level-``L`` field is ``h.ancestors(token_ids, L)``;
- **baselines**: HDBSCAN (scikit-learn, ``min_cluster_size`` = the CDNA's ``min_field_size``): its
  flat clustering is one level, scored against every level's truth; Ward linkage (scipy) cut at the
  true number of groups of each level; Birch (scikit-learn) with ``n_clusters`` = that number and its
  ``threshold`` (a length in data units; the default 0.5 suits standardised data) at the data's
  calibrated length, the median nearest-neighbour distance (``CDNA.calibrate``'s ``neighbor_radius``);
- **scores**: per level, NMI and ARI against that level's truth (full coverage: samples in no field or
  HDBSCAN's noise count as one more group; :mod:`neurograph.eval.metrics`), and the dendrogram purity of
  the engine's tree (samples -> tokens -> fields -> ... -> the whole set) and of Ward's dendrogram
  against each level's truth; for the engine also the NMI of each of its levels against every level's
  truth (which scale a level found, when it is not its own);
- **time**: emit, dynamics and rebuilds per run, the last rebuild alone, and the grouping of each level
  in a plan-only pass over the final state (:func:`~neurograph.hierarchy.plan_hierarchy` with a timed
  grouping: nothing changes).

The targets (reported, never tuned toward): on the nested generator, for every seed, NMI >= 0.9 at every
level with and without dynamics; on digits, level-1 NMI >= the best full-coverage baseline, and more than
one level-2 field.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from neurograph.cdna import CDNA
from neurograph.datasets import digits_8d, nested_groups
from neurograph.engine import Engine
from neurograph.eval.baselines import hdbscan_labels
from neurograph.eval.metrics import ari, dendrogram_purity, linkage_parent, nmi
from neurograph.eval.runner import CHANNEL_TYPE, machine_info
from neurograph.hierarchy import Hierarchy, grouping_of, plan_hierarchy

__all__ = [
    "NESTED_SUITE",
    "QUICK_SUITE",
    "HierarchyEval",
    "NestedSpec",
    "engine_tree",
    "run_hierarchy_eval",
]

TARGET_NMI = 0.9  # nested generator: every level, every seed, with and without dynamics


@dataclass(frozen=True)
class NestedSpec:
    """One setting of :func:`~neurograph.datasets.nested_groups` (drawn once per seed)."""

    branching: tuple[int, ...] = (4, 5)  # children per node, top first: (4, 5) = 4 groups of 5 groups
    n: int = 2000  # samples
    spread: float = 0.5  # half-width of the box of the top centres
    ratio: float = 0.25  # scale of a level's displacements relative to the one above
    noise: float = 0.02  # standard deviation of the samples around their leaf

    @property
    def name(self) -> str:
        per_leaf = self.n // int(np.prod(self.branching))
        return (
            f"nested {self.branching} n={self.n} (~{per_leaf}/group) spread={self.spread} "
            f"ratio={self.ratio} noise={self.noise}"
        )


NESTED_SUITE = (
    NestedSpec((4, 5), 2000, 0.5, 0.25, 0.02),  # the generator's defaults: 100 samples a group
    NestedSpec((4, 5), 800, 1.0, 0.2, 0.04),  # other units, smaller groups (40), more noise
    NestedSpec((2, 6), 1200, 0.3, 0.35, 0.01),  # two wide groups of six, little noise
    NestedSpec((3, 3, 4), 3000, 0.5, 0.25, 0.02),  # three levels at the defaults (~83 a group)
    NestedSpec((3, 3, 4), 1800, 2.0, 0.3, 0.05),  # three levels, larger units, 50 a group
    NestedSpec((2, 5, 5), 2500, 0.5, 0.25, 0.02),  # three levels, every group of >= min_field_size parts
)
QUICK_SUITE = (
    NestedSpec((4, 5), 400, 0.5, 0.25, 0.02),  # 20 a group
    NestedSpec((3, 3, 4), 720, 0.5, 0.25, 0.02),  # three levels, 20 a group
)


@dataclass(frozen=True)
class HierarchyEval:
    """What to evaluate (every field has a comment on its default)."""

    nested: tuple[NestedSpec, ...] = NESTED_SUITE  # generator settings, each drawn with every seed
    seeds: tuple[int, ...] = (0, 1, 2)  # data (nested), stream order and engine seeds
    digits: bool = True  # also the digits (level 1 = the classes; level 2 shown as a class table)
    digits_n: int | None = None  # a seeded subsample of the 1,797 digits (None: all)
    chunks: int = 4  # emit_batch calls, a rebuild after each
    steps: int = 25  # dynamics steps after each batch in the run with dynamics
    device: str = "cpu"

    @classmethod
    def quick(cls, **changes: Any) -> HierarchyEval:
        """A run of seconds: the small suite, one seed, 300 digits, 5 dynamics steps per batch."""
        base = {"nested": QUICK_SUITE, "seeds": (0,), "digits_n": 300, "chunks": 2, "steps": 5}
        return cls(**{**base, **changes})


# --- the engine ------------------------------------------------------------------------------------------
class _TimedGrouping:
    """A grouping that times each call (one per level of a rebuild plan)."""

    def __init__(self, grouping: Callable[..., Any], device: torch.device) -> None:
        self.grouping = grouping
        self.device = device
        self.calls: list[dict[str, Any]] = []

    def __call__(self, pos: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        _sync(self.device)
        t0 = time.perf_counter()
        out = self.grouping(pos, *args, **kwargs)
        _sync(self.device)
        self.calls.append({"tokens": int(pos.shape[0]), "seconds": time.perf_counter() - t0})
        return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def engine_tree(h: Hierarchy, token_ids: np.ndarray) -> np.ndarray:
    """The engine's tree over the samples as a parent array (:func:`~neurograph.eval.dendrogram_purity`).

    Nodes: the ``n`` samples, then the level-0 tokens, the level-1 fields, ... (level by level, rows of
    ``h.levels``), then one root, the whole data set. A sample's parent is the token it became; a token's
    its field (``cluster``); a token in no field and the top level hang from the root.

    Shapes:
        ``token_ids [n] -> [n + sum of the level sizes + 1]``.
    """
    token_ids = np.asarray(token_ids, np.int64)
    sizes = h.sizes()
    offsets = token_ids.size + np.concatenate([[0], np.cumsum(sizes)])  # first node of each level
    root = int(offsets[-1])
    base = h.levels[0].ids.numpy()
    order = np.argsort(base)
    rows = order[np.searchsorted(base[order], token_ids)]  # (n,) level-0 row of each sample's token
    parent = [offsets[0] + rows]
    for lv, data in enumerate(h.levels):
        c = data.cluster.numpy() if lv + 1 < h.n_levels else np.full(sizes[lv], -1)
        parent.append(np.where(c >= 0, offsets[lv + 1] + c, root))
    parent.append(np.array([-1]))
    return np.concatenate(parent).astype(np.int64)


def _engine_run(x: np.ndarray, steps: int, seed: int, cfg: HierarchyEval) -> dict[str, Any]:
    """Stream ``x`` through an engine at the calibrated CDNA; the final hierarchy and the times."""
    cdna = CDNA.calibrate(x)
    eng = Engine(cfg.device, cdna=cdna, seed=seed)
    token_ids = np.zeros(len(x), np.int64)
    t_emit = t_steps = t_hier = t_last = 0.0
    h: Hierarchy | None = None
    for rows in np.array_split(np.arange(len(x)), cfg.chunks):
        t0 = time.perf_counter()
        token_ids[rows] = eng.emit_batch(CHANNEL_TYPE, x[rows]).token_ids.numpy()
        t1 = time.perf_counter()
        if steps:
            eng.step(steps)
        _sync(eng.device)
        t2 = time.perf_counter()
        h = eng.hierarchy()
        t_last = time.perf_counter() - t2
        t_emit, t_steps, t_hier = t_emit + t1 - t0, t_steps + t2 - t1, t_hier + t_last
    assert h is not None
    timed = _TimedGrouping(grouping_of(eng.cdna), eng.device)
    plan_hierarchy(eng.token_state, eng.edge_state, eng.cdna, grouping=timed)  # plans only: nothing changes
    return {
        "hierarchy": h,
        "token_ids": token_ids,
        "cdna": eng.cdna,
        "tokens_per_level": h.sizes(),
        "seconds": {
            "emit": t_emit,
            "dynamics": t_steps,
            "rebuilds": t_hier,
            "last_rebuild": t_last,
            "grouping_per_level": [
                {"level": i + 1, **call} for i, call in enumerate(timed.calls)
            ],  # level i+1 groups the level-i tokens
        },
    }


# --- one data set ----------------------------------------------------------------------------------------
def _level_row(
    method: str, level: int, truth: np.ndarray, pred: np.ndarray, seconds: float
) -> dict[str, Any]:
    covered = pred >= 0
    return {
        "method": method,
        "level": level,
        "k_true": int(np.unique(truth).size),
        "groups": int(np.unique(pred[covered]).size),
        "coverage": float(covered.mean()) if pred.size else 0.0,
        "nmi": nmi(truth, pred),
        "ari": ari(truth, pred),
        "seconds": seconds,
    }


def _evaluate_case(
    name: str, x: np.ndarray, truth: np.ndarray, seed: int, cfg: HierarchyEval, say: Callable[[str], Any]
) -> dict[str, Any]:
    """Engine (without and with dynamics) and baselines on one data set.

    ``truth [n, L]``: column ``L - level`` is the truth of hierarchy level ``level`` (column -1 level 1).
    """
    from scipy.cluster.hierarchy import fcluster, linkage
    from sklearn.cluster import Birch

    n_levels = truth.shape[1]
    level_truth = {lv: truth[:, n_levels - lv] for lv in range(1, n_levels + 1)}
    rows: list[dict[str, Any]] = []
    purity: dict[str, list[float]] = {}
    engines: dict[str, Any] = {}
    cdna = None
    runs = [("engine", 0)] + ([(f"engine + {cfg.steps} steps/batch", cfg.steps)] if cfg.steps else [])
    for label, steps in runs:
        run = _engine_run(x, steps, seed, cfg)
        h, ids, cdna = run["hierarchy"], run["token_ids"], run["cdna"]
        for lv, y in level_truth.items():
            rows.append(_level_row(label, lv, y, h.ancestors(ids, lv), run["seconds"]["rebuilds"]))
        tree = engine_tree(h, ids)
        purity[label] = [dendrogram_purity(level_truth[lv], tree) for lv in level_truth]
        engines[label] = {
            "steps_per_batch": steps,
            "tokens_per_level": run["tokens_per_level"],
            # which scale each level found: NMI of every engine level against every level's truth
            "nmi_by_truth_level": [
                [nmi(level_truth[t], h.ancestors(ids, lv)) for t in level_truth]
                for lv in range(1, h.n_levels)
            ],
            "seconds": run["seconds"],
            "hierarchy": h,
            "token_ids": ids,
        }
        say(f"{name} seed {seed} {label}: {h!r}")
    assert cdna is not None
    # baselines on the same inputs
    t0 = time.perf_counter()
    hdb = hdbscan_labels(x, cdna.min_field_size)
    t_hdb = time.perf_counter() - t0
    for lv, y in level_truth.items():
        rows.append(_level_row(f"HDBSCAN (min_cluster_size {cdna.min_field_size})", lv, y, hdb, t_hdb))
    t0 = time.perf_counter()
    z = linkage(x.astype(np.float64), method="ward")  # (n - 1, 4)
    t_link = time.perf_counter() - t0
    for lv, y in level_truth.items():
        k = int(np.unique(y).size)
        t0 = time.perf_counter()
        pred = fcluster(z, k, criterion="maxclust").astype(np.int64)
        rows.append(_level_row("Ward, true k", lv, y, pred, t_link + time.perf_counter() - t0))
    ward_tree = linkage_parent(z)
    purity["Ward dendrogram"] = [dendrogram_purity(level_truth[lv], ward_tree) for lv in level_truth]
    for lv, y in level_truth.items():
        k = int(np.unique(y).size)
        t0 = time.perf_counter()
        pred = Birch(threshold=cdna.neighbor_radius, n_clusters=k).fit_predict(x).astype(np.int64)
        rows.append(_level_row("Birch, true k", lv, y, pred, time.perf_counter() - t0))
    return {
        "dataset": name,
        "seed": seed,
        "samples": len(x),
        "levels": n_levels,
        "k_true": [int(np.unique(level_truth[lv]).size) for lv in level_truth],
        "cdna": {"name": cdna.name, "hash": cdna.hash, "neighbor_radius": cdna.neighbor_radius},
        "engine": engines,
        "rows": rows,
        "dendrogram_purity": purity,
    }


def _class_table(h: Hierarchy, ids: np.ndarray, labels: np.ndarray, level: int) -> dict[str, Any]:
    """Samples of each class per level-``level`` field (``-1``: in no field)."""
    fields = h.ancestors(ids, level)
    classes = np.unique(labels)
    out = []
    for f in np.unique(fields):
        sel = fields == f
        counts = [int((labels[sel] == c).sum()) for c in classes]
        out.append({"field": int(f), "samples": int(sel.sum()), "counts": counts})
    out.sort(key=lambda r: (r["field"] < 0, -r["samples"]))
    return {"level": level, "classes": classes.tolist(), "fields": out}


# --- the whole evaluation --------------------------------------------------------------------------------
def run_hierarchy_eval(cfg: HierarchyEval, log: Callable[[str], Any] | None = None) -> dict[str, Any]:
    """Run the evaluation (module docstring) and return its report (JSON-able)."""
    import torch_geometric.data  # noqa: F401  the first snapshot imports it: keep that out of the timings

    say = log or (lambda _msg: None)
    t_start = time.perf_counter()
    cases: list[dict[str, Any]] = []
    for spec in cfg.nested:
        for seed in cfg.seeds:
            x, labels = nested_groups(spec.branching, spec.n, spec.spread, spec.ratio, spec.noise, seed)
            order = np.random.default_rng(seed).permutation(len(x))
            case = _evaluate_case(spec.name, x[order], labels[order], seed, cfg, say)
            case["kind"] = "nested"
            case["spec"] = asdict(spec)
            cases.append(case)
    if cfg.digits:
        x_all, y_all = digits_8d()
        for seed in cfg.seeds:
            rng = np.random.default_rng(seed)
            pick = rng.permutation(len(x_all))[: cfg.digits_n]  # a seeded order (and subsample)
            x, y = x_all[pick], y_all[pick]
            case = _evaluate_case(f"digits (n={len(x)})", x, y[:, None], seed, cfg, say)
            case["kind"] = "digits"
            case["level2_classes"] = {
                label: _class_table(e["hierarchy"], e["token_ids"], y, 2)
                for label, e in case["engine"].items()
            }
            cases.append(case)
    for case in cases:  # the snapshots served the tables; the report keeps numbers only
        for e in case["engine"].values():
            del e["hierarchy"], e["token_ids"]
    return {
        "config": {**asdict(cfg), "nested": [asdict(s) for s in cfg.nested]},
        "cases": cases,
        "targets": _targets(cases),
        "wall_seconds": time.perf_counter() - t_start,
        "machine": machine_info(cfg.device),
    }


def _engine_labels(case: dict[str, Any]) -> list[str]:
    return list(case["engine"])


def _targets(cases: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Each target: met or not, with the figures it was judged on."""
    out: dict[str, Any] = {}
    nested = [c for c in cases if c["kind"] == "nested"]
    if nested:
        worst = []
        for c in nested:
            for label in _engine_labels(c):
                mine = [r for r in c["rows"] if r["method"] == label]
                low = min(mine, key=lambda r: r["nmi"])
                worst.append(
                    {
                        "dataset": c["dataset"],
                        "seed": c["seed"],
                        "engine": label,
                        "min_nmi": low["nmi"],
                        "level": low["level"],
                    }
                )
        failing = [w for w in worst if w["min_nmi"] < TARGET_NMI]
        out["nested_nmi_every_level"] = {
            "target": f"nested generator, every seed, NMI >= {TARGET_NMI} at every level, with and without "
            "dynamics",
            "met": not failing,
            "runs": len(worst),
            "runs_met": len(worst) - len(failing),
            "failing": failing,
        }
    digits = [c for c in cases if c["kind"] == "digits"]
    if digits:
        level1, level2 = [], []
        for c in digits:
            level1_rows = [r for r in c["rows"] if r["level"] == 1]
            engines = _engine_labels(c)
            base = max((r for r in level1_rows if r["method"] not in engines), key=lambda r: r["nmi"])
            for label in engines:
                mine = next(r for r in level1_rows if r["method"] == label)
                level1.append(
                    {
                        "seed": c["seed"],
                        "engine": label,
                        "nmi": mine["nmi"],
                        "best_baseline": base["method"],
                        "best_baseline_nmi": base["nmi"],
                        "met": mine["nmi"] >= base["nmi"] - 1e-9,
                    }
                )
                fields = [f for f in c["level2_classes"][label]["fields"] if f["field"] >= 0]
                level2.append(
                    {"seed": c["seed"], "engine": label, "fields": len(fields), "met": len(fields) > 1}
                )
        out["digits_level1_vs_best_baseline"] = {
            "target": "digits level-1 NMI >= the best full-coverage baseline (HDBSCAN's noise is one group)",
            "met": all(r["met"] for r in level1),
            "runs": level1,
        }
        out["digits_level2_fields"] = {
            "target": "digits level 2 has more than one field",
            "met": all(r["met"] for r in level2),
            "runs": level2,
        }
    return out
