"""``run(cfg)``: one experiment, start to finish, into its run directory (what the tests call).

1. Check the config (:func:`~neurograph.experiments.config.validate`); nothing has run yet.
2. Load the data source (:mod:`neurograph.experiments.sources`) and build the CDNA: a profile, or
   ``auto`` (:meth:`CDNA.calibrate <neurograph.cdna.CDNA.calibrate>` to the data), with the config's
   fields on top; a novelty threshold above the neighbour radius fails here, naming the key.
3. Open an engine with its store in ``<run dir>/store`` and stream the signals in ``emit_batch`` calls
   (each with its label, and its text or row as the payload: :mod:`neurograph.memory`);
   after each batch run ``dynamics.steps`` force-field steps and, every ``hierarchy.every`` batches,
   rebuild the hierarchy. One ``metrics.jsonl`` row per batch: signals, tokens, edges, novel rate,
   energies, fields found.
4. Score the level-1 (and level-2) fields against the labels and the baselines (k-means with the number
   of fields found and with the number of classes, HDBSCAN, MiniSom), on a seeded subsample of at most
   ``eval.max_samples`` signals; the level-1 NMI is the run's ``objective`` (what sweeps maximise).
5. Save a snapshot, write ``config.yaml`` (resolved), ``results.json``, ``fields.csv`` (what the level-1
   fields contain: :func:`fields_table`) and ``report.html``, hand the
   results to the loggers, print where the report is, and return the summary.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from neurograph.cdna import CDNA
from neurograph.errors import InvalidArgument
from neurograph.experiments.config import Config, validate
from neurograph.experiments.loggers import make_loggers, plain
from neurograph.experiments.sources import Source, load_source

__all__ = ["build_cdna", "run", "to_config"]

_CDNA_FIELDS = ("novelty_threshold", "neighbor_radius", "temperature", "token_strength", "learning_rate")


def to_config(cfg: Any) -> Config:
    """A :class:`Config` from a composed ``DictConfig`` (resolved) or a ``Config`` as it is."""
    if isinstance(cfg, Config):
        return cfg
    from omegaconf import OmegaConf

    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise InvalidArgument(missing[0], "???", "is required: set it on the command line, e.g. key=value")
    obj = OmegaConf.to_object(cfg)
    if not isinstance(obj, Config):  # composed without the schema: merge it in (checks keys and types)
        obj = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(Config), cfg))
    return obj  # type: ignore[return-value]


def build_cdna(cfg: Config, x: np.ndarray) -> CDNA:
    """The run's constitution for data ``x [n, 8]`` (module docstring, step 2)."""
    c = cfg.cdna
    cdna = CDNA.calibrate(x, base=c.base, seed=cfg.seed) if c.profile == "auto" else CDNA.profile(c.profile)
    changes: dict[str, Any] = {k: getattr(c, k) for k in _CDNA_FIELDS if getattr(c, k) is not None}
    changes.update(
        {
            k: v
            for k, v in (
                ("max_levels", cfg.hierarchy.max_levels),
                ("min_field_size", cfg.hierarchy.min_field_size),
            )
            if v is not None
        }
    )
    changes.update(dict(c.overrides))
    threshold = changes.get("novelty_threshold", cdna.novelty_threshold)
    radius = changes.get("neighbor_radius", cdna.neighbor_radius)
    if threshold > radius:
        raise InvalidArgument(
            "cdna.novelty_threshold",
            threshold,
            f"must be <= the neighbour radius ({radius:g}, profile {c.profile})",
        )
    unknown = sorted(set(changes) - set(cdna.to_dict()))
    if unknown:
        raise InvalidArgument("cdna.overrides", unknown, "not CDNA fields")
    return cdna.replace(**changes) if changes else cdna


def _majority(token_ids: np.ndarray, labels: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """Majority label of the signals each of ``tokens`` absorbed (-1 for a token no signal reached)."""
    frame = pd.DataFrame({"token": token_ids, "label": labels})
    top = frame.groupby("token")["label"].agg(lambda s: s.value_counts().index[0])
    return top.reindex(tokens).fillna(-1).to_numpy(np.int64)


def _baselines(cfg: Config, x: np.ndarray, k_found: int, k_true: int, min_size: int) -> list[tuple[str, Any]]:
    from neurograph.eval.baselines import hdbscan_labels, kmeans_labels, som_labels

    s, it = cfg.seed, cfg.eval.som_iterations
    table = {
        "kmeans": (f"k-means, k = fields found ({k_found})", lambda: kmeans_labels(x, k_found, s)),
        "kmeans_true": (f"k-means, k = classes ({k_true})", lambda: kmeans_labels(x, k_true, s)),
        "hdbscan": (f"HDBSCAN, min_cluster_size = {min_size}", lambda: hdbscan_labels(x, min_size)),
        "som": (f"MiniSom 1 x {k_true}", lambda: som_labels(x, (1, k_true), s, it)),
    }
    return [table[b] for b in cfg.eval.baselines]


def _score(cfg: Config, src: Source, token_ids: np.ndarray, h: Any, min_size: int) -> pd.DataFrame:
    """The metrics table: engine fields per level, then each baseline (module docstring, step 4)."""
    from neurograph.eval.metrics import cluster_scores

    labels = src.level1_labels
    if labels is None:
        return pd.DataFrame(columns=["method", "nmi", "ari", "purity", "coverage", "clusters", "seconds"])
    n = len(src)
    rows = np.arange(n)
    if n > cfg.eval.max_samples:
        rows = np.sort(np.random.default_rng(cfg.seed).choice(n, cfg.eval.max_samples, replace=False))
    y, x, ids = labels[rows], src.x[rows], token_ids[rows]
    out = []
    for level in range(1, min(h.n_levels, 3)):
        out.append(
            {"method": f"emergent fields, level {level}", **cluster_scores(y, h.ancestors(ids, level))}
        )
        out[-1]["seconds"] = math.nan
    k_found = max(1, out[0]["clusters"]) if out else 1
    k_true = int(np.unique(y).size)
    for name, fn in tqdm(_baselines(cfg, x, k_found, k_true, min_size), desc="baselines", leave=False):
        t0 = time.perf_counter()
        pred = fn()
        out.append({"method": name, **cluster_scores(y, pred), "seconds": time.perf_counter() - t0})
    return pd.DataFrame(out)


def run(cfg: Any) -> dict[str, Any]:
    """Run one experiment (module docstring) and return its summary (``objective``: level-1 NMI).

    Args:
        cfg: the composed config (a ``DictConfig`` from Hydra or the compose API, or a :class:`Config`);
            ``output_dir`` is the run directory.

    Raises:
        InvalidArgument: a value no type check catches (names the key); nothing has run.
    """
    from neurograph.engine import Engine

    c = to_config(cfg)
    validate(c)
    run_dir = Path(c.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    src = load_source(c.dataset, c.encoder, c.seed, run_dir)
    cdna = build_cdna(c, src.x)
    resolved = asdict(c)
    _write_yaml(run_dir / "config.yaml", resolved)
    log = make_loggers(c.logger, run_dir, resolved, c.name, c.tags)
    t_start = time.perf_counter()
    eng = Engine(
        c.engine.device,
        cdna=cdna,
        seed=c.seed,
        path=run_dir / c.engine.store,
        capacity=c.engine.capacity,
        index_backend=c.engine.index_backend,
        durability=c.engine.durability,
        dynamics=c.dynamics.backend,
    )
    token_ids = np.zeros(len(src), np.int64)
    curve: list[dict[str, Any]] = []
    h = None
    batches = list(src.batches(c.dataset.batch_size))
    for i, rows in enumerate(tqdm(batches, desc=f"stream {src.name}", unit="batch")):
        t0 = time.perf_counter()
        b = eng.emit_batch(
            src.event_type, src.x[rows], labels=src.label_strings(rows), payloads=src.payloads(rows)
        )
        token_ids[rows] = b.token_ids.cpu().numpy()
        row: dict[str, Any] = {"phase": "stream", "batch": i, "signals": int(rows[-1]) + 1}
        row["novel_rate"] = float(b.is_novel.float().mean())
        if c.dynamics.steps > 0:
            s = eng.step(c.dynamics.steps)
            row.update(potential=s.potential, kinetic=s.kinetic, total_energy=s.total_energy)
        if c.hierarchy.every and ((i + 1) % c.hierarchy.every == 0 or i + 1 == len(batches)):
            h = eng.hierarchy()
            row["fields_level1"] = h.sizes()[1] if h.n_levels > 1 else 0
        st = eng.stats()
        row.update(tokens=st["tokens"], edges=st["edges"], seconds=time.perf_counter() - t0)
        curve.append(row)
        log.log_metrics(row, step=i)
    if h is None:
        h = eng.hierarchy()
    t_stream = time.perf_counter() - t_start
    table = _score(c, src, token_ids, h, cdna.min_field_size)
    contents = fields_table(h)
    contents.to_csv(run_dir / "fields.csv", index=False)
    snapshot = eng.save()
    eng.close()
    log.log_snapshot(run_dir / c.engine.store)
    level1 = table[table["method"] == "emergent fields, level 1"]
    baselines = table[~table["method"].str.startswith("emergent")]
    summary: dict[str, Any] = {
        "phase": "summary",
        "name": c.name,
        "dataset": src.name,
        "signals": len(src),
        "tokens_per_level": h.sizes(),
        "novel_rate": float(np.mean([r["novel_rate"] for r in curve])) if curve else 0.0,
        "objective": float(level1["nmi"].iloc[0]) if len(level1) else math.nan,
        "nmi_level1": float(level1["nmi"].iloc[0]) if len(level1) else math.nan,
        "best_baseline": baselines.loc[baselines["nmi"].idxmax(), "method"] if len(baselines) else None,
        "best_baseline_nmi": float(baselines["nmi"].max()) if len(baselines) else math.nan,
        "seconds_stream": t_stream,
        "cdna_hash": cdna.hash,
        "run_dir": str(run_dir),
        "snapshot": str(snapshot),
    }
    figs = _report(
        c,
        run_dir,
        eng_tree=h,
        token_ids=token_ids,
        src=src,
        curve=curve,
        table=table,
        summary=summary,
        contents=contents,
    )
    log.log_results(figs, table)
    log.log_metrics(summary)
    log.finish()
    (run_dir / "results.json").write_text(
        json.dumps(
            plain(
                {
                    "summary": summary,
                    "table": table.to_dict(orient="records"),
                    "fields": contents.to_dict(orient="records"),
                    "cdna": cdna.to_dict(),
                }
            ),
            indent=2,
        )
    )
    if c.report.enabled:
        print(f"report: {(run_dir / 'report.html').resolve()}")
    return summary


def fields_table(h: Any, level: int = 1, top: int = 30, terms: int = 5) -> pd.DataFrame:
    """What the largest ``top`` fields of ``level`` contain (:meth:`~neurograph.Hierarchy.describe`):
    id, tokens, name, the three most frequent labels with their share, the label purity, the
    distinguishing terms and the payload of the token nearest the centre."""
    columns = ["id", "tokens", "name", "labels", "purity", "terms", "nearest"]
    if h.n_levels <= level:
        return pd.DataFrame(columns=columns)
    fields = h.fields(level).sort_values("tokens", ascending=False, kind="stable").head(top)
    rows = []
    for fid in fields["id"].tolist():
        d = h.describe(int(fid), exemplars=1, terms=terms)
        total = sum(d.labels.values())
        shares = [f"{name} ({n / total:.0%})" for name, n in list(d.labels.items())[:3]] if total else []
        first = d.exemplars.iloc[0] if len(d.exemplars) else None
        nearest = None if first is None else (first["text"] if first["text"] else first["payload"])
        rows.append(
            {
                "id": d.id,
                "tokens": d.tokens,
                "name": d.name,
                "labels": ", ".join(shares),
                "purity": max(d.labels.values()) / total if total else math.nan,
                "terms": " ".join(d.terms),
                "nearest": None if nearest is None else str(nearest)[:120],
            }
        )
    return pd.DataFrame(rows, columns=columns)


def _report(
    c: Config,
    run_dir: Path,
    *,
    eng_tree: Any,
    token_ids: np.ndarray,
    src: Source,
    curve: list,
    table: pd.DataFrame,
    summary: dict,
    contents: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """Figures (always, for the loggers) and ``report.html`` (when enabled)."""
    from neurograph.experiments.report import figures, write_report

    tree = eng_tree.to_pandas()
    level0 = tree[tree["level"] == 0].reset_index(drop=True)
    labels = src.level1_labels
    label_of = _majority(token_ids, labels, level0["id"].to_numpy()) if labels is not None else None
    if label_of is not None and src.label_names:
        names = np.asarray([*src.label_names, "none"])
        label_of = names[label_of]  # -1 -> "none"
    figs = figures(level0, eng_tree.assignment(1), label_of, tree, curve, table, c.report.max_points, c.seed)
    if c.report.enabled:
        shown = {k: v for k, v in summary.items() if k not in ("phase", "snapshot")}
        tables = {"what the level-1 fields contain": contents} if contents is not None else {}
        title = f"neurograph · {c.name} · {src.name}"
        write_report(run_dir / "report.html", figs, title, shown, c.report.plotlyjs, tables=tables)
    return figs


def _write_yaml(path: Path, data: dict[str, Any]) -> None:
    import yaml

    path.write_text(yaml.safe_dump(plain(data), sort_keys=False))
