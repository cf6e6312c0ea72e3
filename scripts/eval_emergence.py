#!/usr/bin/env python3
"""Do knowledge structures emerge? The engine's level-1 fields against labels and clustering baselines.

Streams a labelled data set (8-D inputs from ``neurograph.datasets``) through an engine in ``--chunks``
``emit_batch`` calls, rebuilding the hierarchy after each (and running ``--steps`` of the dynamics first
when asked and available), then scores the fields (NMI, ARI, purity, coverage, nesting, stability) and
runs k-means (k = fields found, k = classes), HDBSCAN and MiniSom on the same inputs in the same process
(``neurograph.eval.runner`` explains each). Prints a table and writes
``benchmarks/results/eval_emergence_<dataset>.json`` and ``.md``.

The main run uses the ``auto`` CDNA preset, ``CDNA.calibrate(x)`` (neighbour radius = the median
nearest-neighbour distance of the data, novelty threshold = half of it, every other length scaled alike,
the box fitted to the data; no tuning on the labels). For reference the
JSON also holds: the same run at the untouched ``default`` CDNA, and (``--sweep``) what else was tried:
the field settings ``field_neighbors`` x ``field_persistence``, HDBSCAN's ``min_cluster_size`` and
MiniSom map shapes, each scored against the labels (so the best of a sweep is tuned on the labels:
report it as such, never as the main result).

``--text`` scores level-1 fields of short sentences (the bundled ``topics_large.csv``: 8 topics x 130)
through the ``semantic`` encoder (packaged projection, and the projection fitted on the texts; ``hashed``
beside them) against k-means with the true k on the same 8-D
vectors, at several corpus sizes (seeded subsamples), written to ``benchmarks/results/eval_text.*``.

``--hierarchy`` evaluates the levels instead (``neurograph.eval.hierarchy`` explains it): nested groups with
known labels at every level and the digits, the engine at the calibrated CDNA without and with dynamics,
per level against HDBSCAN, Ward linkage and Birch (NMI, ARI, dendrogram purity), written to
``benchmarks/results/eval_hierarchy.json`` and ``.md`` (``eval_hierarchy_quick.*`` with ``--quick``).

Usage:
  python scripts/eval_emergence.py --dataset digits --sweep
  python scripts/eval_emergence.py --hierarchy
  python scripts/eval_emergence.py --hierarchy --quick --out /tmp
  python scripts/eval_emergence.py --text --seeds 0 1 2
  python scripts/eval_emergence.py --dataset iris --sweep
  python scripts/eval_emergence.py --dataset blobs --set field_persistence=2.0 --steps 100 --out /tmp
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from benchmeta import machine

from neurograph.datasets import load
from neurograph.eval import (
    EmergenceRun,
    HierarchyEval,
    cluster_scores,
    format_table,
    hdbscan_labels,
    kmeans_labels,
    nmi,
    preset_cdna,
    run_emergence,
    run_hierarchy_eval,
    som_labels,
)

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


def parse_set(items: list[str]) -> dict[str, Any]:
    """``["field_persistence=2.0", ...]`` -> ``{"field_persistence": 2.0}`` (values parsed as YAML)."""
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key.strip()] = yaml.safe_load(value)
    return out


def sweep(args: argparse.Namespace, overrides: dict[str, Any]) -> dict[str, Any]:
    """What else was tried, each scored against the labels."""
    tried: dict[str, Any] = {"fields": [], "hdbscan": [], "minisom": []}
    for k, p in itertools.product((8, 16, 32), (0.5, 1.0, 2.0)):
        run = EmergenceRun(
            dataset=args.dataset,
            preset=args.preset,
            overrides={**overrides, "field_neighbors": k, "field_persistence": p},
            chunks=args.chunks,
            steps=0,
            seed=args.seed,
            device=args.device,
            baselines=False,
        )
        r = run_emergence(run)["results"][0]
        tried["fields"].append({"field_neighbors": k, "field_persistence": p, **_scores(r)})
        print(f"  fields  k={k:2d} persistence={p:3.1f}: {r['clusters']:3d} fields, NMI {r['nmi']:.3f}")
    x, labels = load(args.dataset)
    order = np.random.default_rng(args.seed).permutation(len(x))  # the order the main run streams in
    x, labels = x[order], labels[order]
    for m in (5, 10, 15, 25, 40):
        r = cluster_scores(labels, hdbscan_labels(x, m))
        tried["hdbscan"].append({"min_cluster_size": m, **_scores(r)})
        print(f"  HDBSCAN min_cluster_size={m:2d}: {r['clusters']:3d} groups, NMI {r['nmi']:.3f}")
    for shape in ((1, 5), (1, 10), (2, 5), (3, 4), (4, 4), (5, 5), (6, 6)):
        r = cluster_scores(labels, som_labels(x, shape, args.seed))
        tried["minisom"].append({"shape": list(shape), **_scores(r)})
        print(f"  MiniSom {shape[0]}x{shape[1]}: NMI {r['nmi']:.3f}")
    tried["note"] = "each setting scored against the labels: the best of a sweep is tuned on them"
    return tried


def _scores(r: dict[str, Any]) -> dict[str, Any]:
    return {key: r[key] for key in ("clusters", "coverage", "nmi", "ari", "purity")}


def _hdbscan_line(report: dict[str, Any]) -> list[str]:
    h = report.get("hdbscan_covered")
    if not h:
        return []
    return [
        f"HDBSCAN over the points it clusters ({h['coverage']:.1%} of them): NMI {h['nmi_covered']:.3f} "
        "(not the goal's measure: leaving the hard points out as noise raises it)."
    ]


def markdown(report: dict[str, Any], default_rows: list[dict[str, Any]], command: str) -> str:
    cdna = ", ".join(f"{k}={v}" for k, v in report["cdna"].items())
    best = report["best_baseline"]
    lines = [
        f"# eval_emergence: {report['dataset']} ({report['samples']} samples, {report['classes']} classes)",
        "",
        f"`{command}` on {report['machine']['cpu']} ({report['machine']['device']}), "
        f"torch {report['machine']['torch']}.",
        "",
        f"CDNA (preset `{report['run']['preset']}`): {cdna}.",
        f"Tokens per level: {report['tokens_per_level']}; dynamics steps per chunk: "
        f"{report['dynamics']['steps_per_chunk']}.",
        "",
        format_table(report),
        "",
        f"Best baseline: {best['method']} (NMI {best['nmi']:.3f}); goal (level-1 NMI >= best baseline, "
        f"full-coverage NMI): {'met' if report['goal_met'] else 'not met'}.",
        *_hdbscan_line(report),
        "",
        _dynamics_line(report),
        "At the untouched default CDNA: "
        + "; ".join(f"{r['method']}: {r['clusters']} group(s), NMI {r['nmi']:.3f}" for r in default_rows)
        + ".",
        "",
        *_tried_lines(report.get("tried")),
        "",
        f"Stability between chunk rebuilds (tokens keeping their level-1 field id; ARI of the assignments): "
        f"{[round(s['same_field_id'], 3) for s in report['stability']['between_chunks']]}; "
        f"{[round(s['ari'], 3) for s in report['stability']['between_chunks']]}; "
        f"an idle rebuild: ARI {report['stability']['idle_rebuild']['ari']:.3f}, "
        f"ids persisting {report['stability']['idle_rebuild']['ids_persisting']:.3f}. "
        f"Nesting: {report['nesting']}.",
    ]
    return "\n".join(lines) + "\n"


def _tried_lines(tried: dict[str, Any] | None) -> list[str]:
    if not tried:
        return []
    fields = ", ".join(
        f"k={t['field_neighbors']}/p={t['field_persistence']}: {t['nmi']:.3f} ({t['clusters']})"
        for t in tried["fields"]
    )
    hdb = ", ".join(f"{t['min_cluster_size']}: {t['nmi']:.3f}" for t in tried["hdbscan"])
    som = ", ".join(f"{t['shape'][0]}x{t['shape'][1]}: {t['nmi']:.3f}" for t in tried["minisom"])
    return [
        "Also tried (each scored against the labels, so the best of each sweep is tuned on them): "
        f"fields (field_neighbors/field_persistence: NMI (fields)) {fields}; "
        f"HDBSCAN (min_cluster_size: NMI) {hdb}; MiniSom (shape: NMI) {som}.",
    ]


def _dynamics_line(report: dict[str, Any]) -> str:
    dyn = report.get("with_dynamics")
    if not dyn:
        return "Dynamics: not run in this evaluation (`--also-steps N` adds a run with N steps per chunk).\n"
    if not dyn["dynamics"]["available"] or not dyn["dynamics"]["steps_per_chunk"]:
        return "Dynamics: asked for, but this engine has no `step()`.\n"
    r = dyn["results"][0]
    return (
        f"With {dyn['dynamics']['steps_per_chunk']} dynamics steps after each chunk (same CDNA): level-1 "
        f"{r['clusters']} fields, NMI {r['nmi']:.3f}, ARI {r['ari']:.3f} "
        f"({dyn['seconds']['dynamics']:.0f} s of dynamics).\n"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", choices=("digits", "iris", "blobs"), default="digits")
    ap.add_argument("--preset", choices=("auto", "scaled", "default"), default="auto")
    ap.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="CDNA overrides")
    ap.add_argument("--chunks", type=int, default=None, help="emit_batch calls, a rebuild after each (4)")
    ap.add_argument(
        "--steps",
        type=int,
        default=None,
        help="dynamics steps after each chunk (0; --hierarchy: of its run with dynamics, 25)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hierarchy", action="store_true", help="evaluate the levels on nested labels")
    ap.add_argument("--quick", action="store_true", help="--hierarchy at a small size (seconds)")
    ap.add_argument("--text", action="store_true", help="level-1 fields of topic sentences vs k-means")
    ap.add_argument("--sizes", type=int, nargs="+", default=[50, 200, 1000], help="--text corpus sizes")
    ap.add_argument("--seeds", type=int, nargs="+", default=None, help="--hierarchy seeds (0 1 2)")
    ap.add_argument("--digits-n", type=int, default=None, help="--hierarchy: a subsample of the digits")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--sweep", action="store_true", help="also record what else was tried")
    ap.add_argument(
        "--also-steps",
        type=int,
        default=0,
        help="also run the main setting with this many dynamics steps per chunk",
    )
    ap.add_argument("--out", type=Path, default=RESULTS, help="directory of the JSON and Markdown")
    args = ap.parse_args()
    if args.hierarchy:
        hierarchy_main(args)
        return
    if args.text:
        text_main(args)
        return
    args.chunks = 4 if args.chunks is None else args.chunks
    args.steps = 0 if args.steps is None else args.steps
    overrides = parse_set(args.set)
    command = (
        f"python scripts/eval_emergence.py --dataset {args.dataset} --preset {args.preset} "
        f"--chunks {args.chunks} --steps {args.steps} --seed {args.seed}"
        + (" --sweep" if args.sweep else "")
        + (f" --also-steps {args.also_steps}" if args.also_steps else "")
        + (" --set " + " ".join(args.set) if args.set else "")
    )
    t0 = time.perf_counter()
    run = EmergenceRun(
        args.dataset, args.preset, overrides, args.chunks, args.steps, args.seed, device=args.device
    )
    report = run_emergence(run, log=lambda msg: print("  " + msg))
    print(format_table(report))
    default_run = EmergenceRun(args.dataset, "default", {}, args.chunks, 0, args.seed, device=args.device)
    default_rows = [r for r in run_emergence(default_run)["results"] if r["method"].startswith("emergent")]
    report["default_cdna"] = {
        "cdna": {
            k: v
            for k, v in preset_cdna("default", load(args.dataset)[0]).to_dict().items()
            if k in report["cdna"]
        },
        "results": default_rows,
    }
    if args.also_steps:
        print(f"with {args.also_steps} dynamics steps per chunk:")
        dyn = EmergenceRun(
            args.dataset, args.preset, overrides, args.chunks, args.also_steps, args.seed, device=args.device
        )
        dyn_report = run_emergence(
            dataclasses.replace(dyn, baselines=False), log=lambda msg: print("  " + msg)
        )
        report["with_dynamics"] = {
            key: dyn_report[key]
            for key in ("dynamics", "tokens_per_level", "results", "stability", "seconds")
        }
    if args.sweep:
        print("sweep:")
        report["tried"] = sweep(args, overrides)
    report["command"] = command
    report["table"] = format_table(report)
    report["wall_seconds"] = time.perf_counter() - t0
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"eval_emergence_{args.dataset}"
    stem.with_suffix(".json").write_text(json.dumps(_json_safe(report), indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(report, default_rows, command))
    best = report["best_baseline"]
    print(
        f"level-1 NMI {report['results'][0]['nmi']:.3f} vs best baseline {best['method']} {best['nmi']:.3f}"
        " (full coverage)"
    )
    for line in _hdbscan_line(report):
        print(line)
    print(f"wrote {stem}.json and {stem}.md")


def text_main(args: argparse.Namespace) -> None:
    """``--text``: level-1 fields of the topic sentences against k-means (true k) on the same vectors.

    Three encodings of every subsample: ``semantic`` with the packaged projection (a PCA fitted on the 80
    sentences of ``neurograph/gateway/corpus.txt``), ``semantic`` with the projection fitted on the
    subsample itself (``SemanticEncoder.fit(texts)``: unsupervised, no labels, as ``CDNA.calibrate`` fits
    the lengths), and ``hashed``.
    """
    import tempfile

    import torch

    import neurograph as ng
    from neurograph.experiments.sources import topics_corpus
    from neurograph.gateway.encoders import make_encoder
    from neurograph.gateway.semantic import SemanticEncoder

    texts, topics, names = topics_corpus(bundled="topics_large.csv")
    seeds = args.seeds if args.seeds is not None else [0, 1, 2]
    t0 = time.perf_counter()
    packaged = {name: make_encoder(name).encode_batch(texts) for name in ("semantic", "hashed")}  # (n, 8)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for enc in ("semantic", "semantic (fitted)", "hashed"):
            for size in args.sizes:
                for seed in seeds:
                    pick = np.random.default_rng(seed).permutation(len(texts))[: min(size, len(texts))]
                    y = topics[pick]
                    if enc == "semantic (fitted)":
                        sub = [texts[i] for i in pick]
                        x = SemanticEncoder.fit_encode(sub, Path(tmp) / f"pca_{size}_{seed}.npz")[1]
                    else:
                        x = packaged[enc][pick]
                    torch.manual_seed(seed)
                    eng = ng.Engine(args.device, cdna=ng.CDNA.calibrate(x), seed=seed)
                    ids = eng.emit_batch("signal.input.external.text.chat", x).token_ids.numpy()
                    fields = eng.hierarchy().ancestors(ids, 1)
                    k = int(np.unique(y).size)
                    row = {
                        "encoder": enc,
                        "sentences": len(pick),
                        "seed": seed,
                        "topics": k,
                        "fields": int(np.unique(fields[fields >= 0]).size),
                        "coverage": float((fields >= 0).mean()),
                        "engine_nmi": nmi(y, fields),
                        "kmeans_nmi": nmi(y, kmeans_labels(x, k, seed)),
                    }
                    rows.append(row)
                    print(
                        f"  {enc} {row['sentences']} sentences seed {seed}: {row['fields']} fields, NMI "
                        f"{row['engine_nmi']:.3f} vs k-means (k={k}) {row['kmeans_nmi']:.3f}",
                        flush=True,
                    )
    command = f"python scripts/eval_emergence.py --text --sizes {' '.join(map(str, args.sizes))} --seeds " + (
        " ".join(map(str, seeds))
    )
    report = {
        "command": command,
        "corpus": {
            "sentences": len(texts),
            "topics": names,
            "file": "neurograph/experiments/topics_large.csv",
        },
        "rows": rows,
        "wall_seconds": time.perf_counter() - t0,
        "machine": machine(),
    }
    lines = [
        "# eval_emergence --text: level-1 fields of topic sentences against k-means",
        "",
        f"`{command}`; {report['wall_seconds']:.0f} s. Corpus: `neurograph/experiments/topics_large.csv`, "
        f"{len(texts)} sentences on {len(names)} topics ({', '.join(names)}); a seeded subsample per size. "
        "Engine: `CDNA.calibrate(x)`, one `emit_batch`, `hierarchy()`; the level-1 field of each sentence "
        "(full coverage NMI). k-means: the true number of topics, on the same 8-D vectors. Encoders: "
        "`semantic` with its packaged projection (a PCA of 80 everyday sentences), `semantic (fitted)` with "
        "the projection fitted on the subsample's own texts (`SemanticEncoder.fit(texts)`, no labels), "
        "`hashed`.",
        "",
        "| encoder | sentences | fields | engine NMI | k-means NMI (true k) | met |",
        "|---|---|---|---|---|---|",
    ]
    for enc in dict.fromkeys(r["encoder"] for r in rows):
        for size in dict.fromkeys(r["sentences"] for r in rows if r["encoder"] == enc):
            group = [r for r in rows if r["encoder"] == enc and r["sentences"] == size]
            mine = [r["engine_nmi"] for r in group]
            km = [r["kmeans_nmi"] for r in group]
            met = all(r["engine_nmi"] >= r["kmeans_nmi"] for r in group)
            lines.append(
                f"| {enc} | {size} | {np.mean([r['fields'] for r in group]):.1f} | {_stat(mine)} | "
                f"{_stat(km)} | {'yes' if met else 'no'} |"
            )
    lines += ["", "Cells: `mean [min]` over the seeds; *met*: the engine >= k-means for every seed."]
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / "eval_text"
    stem.with_suffix(".json").write_text(json.dumps(_json_safe(report), indent=2) + "\n")
    stem.with_suffix(".md").write_text(text)
    print(f"wrote {stem}.json and {stem}.md")


def hierarchy_main(args: argparse.Namespace) -> None:
    """``--hierarchy``: run :func:`neurograph.eval.run_hierarchy_eval`, print and write its report."""
    changes: dict[str, Any] = {"device": args.device}
    if args.seeds is not None:
        changes["seeds"] = tuple(args.seeds)
    if args.chunks is not None:
        changes["chunks"] = args.chunks
    if args.steps is not None:
        changes["steps"] = args.steps
    if args.digits_n is not None:
        changes["digits_n"] = args.digits_n
    cfg = HierarchyEval.quick(**changes) if args.quick else HierarchyEval(**changes)
    command = (
        "python scripts/eval_emergence.py --hierarchy"
        + (" --quick" if args.quick else "")
        + f" --seeds {' '.join(map(str, cfg.seeds))} --chunks {cfg.chunks} --steps {cfg.steps}"
        + (f" --digits-n {cfg.digits_n}" if cfg.digits_n else "")
        + (f" --device {args.device}" if args.device != "cpu" else "")
    )
    report = run_hierarchy_eval(cfg, log=lambda msg: print("  " + msg, flush=True))
    report["command"] = command
    report["machine"] = {**machine(), **report["machine"]}
    text = hierarchy_markdown(report)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / ("eval_hierarchy_quick" if args.quick else "eval_hierarchy")
    stem.with_suffix(".json").write_text(json.dumps(_json_safe(report), indent=2) + "\n")
    stem.with_suffix(".md").write_text(text)
    print(f"wrote {stem}.json and {stem}.md")


def hierarchy_markdown(report: dict[str, Any]) -> str:
    """The ``--hierarchy`` report as Markdown: the command and machine, then the tables."""
    m = report["machine"]
    head = [
        "# eval_emergence --hierarchy: fields of fields against nested labels",
        "",
        f"`{report['command']}` on {m['cpu']} ({m['device']}{', ' + m['gpu'] if m.get('gpu') else ''}), "
        f"torch {m['torch']}, scikit-learn {m['sklearn']}, load average {m.get('load_average')}, "
        f"{m.get('date')}; {report['wall_seconds']:.0f} s in all.",
        "",
        "The engine: `CDNA.calibrate(x)` (the default profile at the data's scale, nothing tuned per data "
        "set), "
        f"{report['config']['chunks']} `emit_batch` calls with a rebuild after each, without dynamics and "
        f"with {report['config']['steps']} `step`s after each batch. Baselines on the same inputs: HDBSCAN "
        "(one flat level, scored against each level's truth), Ward linkage cut at the true k of each level, "
        "Birch with `n_clusters` = that k (threshold = the calibrated neighbour radius).",
        "",
    ]
    return "\n".join(head) + "\n" + format_hierarchy_markdown(report)


def _methods(cases: Sequence[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for c in cases:
        for r in c["rows"]:
            seen.setdefault(r["method"], None)
    return list(seen)


def _level_cells(group: list[dict], methods: list[str], lv: int, score: str) -> list[str]:
    """``mean [min]`` of ``score`` (nmi, ari) over the seeds of ``group``, per method, at level ``lv``."""
    cells = []
    for m in methods:
        vals = [r[score] for c in group for r in c["rows"] if r["method"] == m and r["level"] == lv]
        cells.append(_stat(vals) if vals else "")
    return cells


def _stat(values: Sequence[float]) -> str:
    """``mean [min]`` over seeds (the mean alone for one seed)."""
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{np.mean(values):.3f} [{min(values):.3f}]"


def format_hierarchy_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: per data set and level the NMI (ARI) of every method over the seeds, the
    dendrogram purity, the digits' level-2 class tables, the targets and the times."""
    cases = report["cases"]
    methods = _methods(cases)
    names = list(dict.fromkeys(c["dataset"] for c in cases))
    seeds = list(report["config"]["seeds"])
    lines = [
        "Each cell: NMI over the seeds as `mean [min]` (full coverage: samples in no field and HDBSCAN's "
        f"noise count as one more group); seeds {seeds}. *fields* = the engine's groups at that level "
        "(mean over seeds), *k* = the true number.",
        "",
        "| data set | level | k | fields | fields + dyn | " + " | ".join(methods) + " |",
        "|---|---|---|---|---|" + "---|" * len(methods),
    ]
    for name in names:
        group = [c for c in cases if c["dataset"] == name]
        engines = list(group[0]["engine"])
        for lv in range(1, group[0]["levels"] + 1):
            cells = _level_cells(group, methods, lv, "nmi")
            found = [
                np.mean(
                    [r["groups"] for c in group for r in c["rows"] if r["method"] == e and r["level"] == lv]
                )
                for e in engines
            ]
            found_cells = [f"{f:.1f}" for f in found] + [""] * (2 - len(found))
            k = group[0]["k_true"][lv - 1]
            lines.append(
                f"| {name} | {lv} | {k} | " + " | ".join(found_cells) + " | " + " | ".join(cells) + " |"
            )
    lines += ["", "ARI, same layout:", "", "| data set | level | " + " | ".join(methods) + " |"]
    lines.append("|---|---|" + "---|" * len(methods))
    for name in names:
        group = [c for c in cases if c["dataset"] == name]
        for lv in range(1, group[0]["levels"] + 1):
            cells = _level_cells(group, methods, lv, "ari")
            lines.append(f"| {name} | {lv} | " + " | ".join(cells) + " |")
    trees = list(dict.fromkeys(t for c in cases for t in c["dendrogram_purity"]))
    lines += [
        "",
        "Dendrogram purity (Heller & Ghahramani 2005) against each level's truth, `mean [min]` over the "
        "seeds; the engine's tree: samples -> tokens -> fields -> ... -> the whole set.",
        "",
        "| data set | truth of level | " + " | ".join(trees) + " |",
        "|---|---|" + "---|" * len(trees),
    ]
    for name in names:
        group = [c for c in cases if c["dataset"] == name]
        for i in range(group[0]["levels"]):
            cells = [_stat([c["dendrogram_purity"][t][i] for c in group]) for t in trees]
            lines.append(f"| {name} | {i + 1} | " + " | ".join(cells) + " |")
    lines += [
        "",
        *_scale_lines(cases),
        *_digits_lines(cases),
        *_target_lines(report["targets"]),
        *_time_lines(cases),
    ]
    return "\n".join(lines) + "\n"


def _digits_lines(cases: Sequence[dict[str, Any]]) -> list[str]:
    digits = [c for c in cases if c["kind"] == "digits"]
    if not digits:
        return []
    c = digits[0]
    lines = [f"Digits, seed {c['seed']}: the digit classes each level-2 field holds (samples per class).", ""]
    for label, table in c["level2_classes"].items():
        classes = table["classes"]
        lines += [
            f"{label}:",
            "",
            "| level-2 field | samples | " + " | ".join(str(k) for k in classes) + " |",
            "|---|---|" + "---|" * len(classes),
        ]
        for f in table["fields"]:
            field = "none" if f["field"] < 0 else str(f["field"])
            lines.append(f"| {field} | {f['samples']} | " + " | ".join(str(v) for v in f["counts"]) + " |")
        lines.append("")
    others = [
        f"seed {d['seed']} {label}: {len([f for f in t['fields'] if f['field'] >= 0])}"
        for d in digits[1:]
        for label, t in d["level2_classes"].items()
    ]
    if others:
        lines += ["Level-2 fields with the other seeds: " + "; ".join(others) + ".", ""]
    return lines


def _target_lines(targets: dict[str, Any]) -> list[str]:
    lines = ["Targets (reported as measured, not tuned toward):", ""]
    for t in targets.values():
        verdict = "**met**" if t["met"] else "**not met**"
        if "runs_met" in t:
            below: dict[tuple[str, str], list[str]] = {}
            for f in t["failing"]:
                below.setdefault((f["dataset"], f["engine"]), []).append(
                    f"seed {f['seed']}: level {f['level']} NMI {f['min_nmi']:.3f}"
                )
            lines.append(f"- {t['target']}: {verdict} ({t['runs_met']} of {t['runs']} runs).")
            lines += [f"  - below: {name}, {engine}: " + "; ".join(v) for (name, engine), v in below.items()]
            continue
        if t["runs"] and "nmi" in t["runs"][0]:
            detail = "; ".join(
                f"seed {r['seed']} {r['engine']}: {r['nmi']:.3f} vs {r['best_baseline']} "
                f"{r['best_baseline_nmi']:.3f}"
                for r in t["runs"]
            )
        else:
            detail = "; ".join(f"seed {r['seed']} {r['engine']}: {r['fields']}" for r in t["runs"])
        lines.append(f"- {t['target']}: {verdict} ({detail}).")
    return [*lines, ""]


def _scale_lines(cases: Sequence[dict[str, Any]]) -> list[str]:
    """Which scale each engine level found: its NMI against every level's truth (mean over seeds)."""
    nested = [c for c in cases if c["kind"] == "nested"]
    if not nested:
        return []
    depth = max(c["levels"] for c in nested)
    lines = [
        "Which scale each engine level found (no dynamics; NMI of the engine's level against the truth of "
        "every level, `mean [min]` over the seeds; levels that no seed built are left out):",
        "",
        "| data set | engine level | fields | "
        + " | ".join(f"truth {t}" for t in range(1, depth + 1))
        + " |",
        "|---|---|---|" + "---|" * depth,
    ]
    for name in dict.fromkeys(c["dataset"] for c in nested):
        group = [c for c in nested if c["dataset"] == name]
        runs = [c["engine"][next(iter(c["engine"]))] for c in group]  # the run without dynamics
        for lv in range(1, max(len(r["nmi_by_truth_level"]) for r in runs) + 1):
            rows = [
                r["nmi_by_truth_level"][lv - 1] if lv <= len(r["nmi_by_truth_level"]) else None for r in runs
            ]
            cells = [
                _stat([row[t] if row else 0.0 for row in rows]) if t < group[0]["levels"] else ""
                for t in range(depth)
            ]
            sizes = [r["tokens_per_level"] for r in runs]
            fields = np.mean([s[lv] if lv < len(s) else 0 for s in sizes])
            lines.append(f"| {name} | {lv} | {fields:.1f} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _time_lines(cases: Sequence[dict[str, Any]]) -> list[str]:
    lines = [
        "Times (seconds, mean over seeds; the grouping of each level from a plan-only pass over the final "
        "state: tokens grouped -> seconds):",
        "",
        "| data set | engine | emit | dynamics | all rebuilds | last rebuild | grouping per level |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in dict.fromkeys(c["dataset"] for c in cases):
        group = [c for c in cases if c["dataset"] == name]
        for label in list(group[0]["engine"]):
            secs = [c["engine"][label]["seconds"] for c in group]
            mean = {
                k: float(np.mean([s[k] for s in secs]))
                for k in ("emit", "dynamics", "rebuilds", "last_rebuild")
            }
            per_level = ", ".join(
                f"L{g['level']}: {g['tokens']} -> {g['seconds']:.3f}" for g in secs[0]["grouping_per_level"]
            )
            lines.append(
                f"| {name} | {label} | {mean['emit']:.2f} | {mean['dynamics']:.2f} | "
                f"{mean['rebuilds']:.2f} | {mean['last_rebuild']:.2f} | {per_level} |"
            )
    return lines


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if not math.isfinite(float(value)) else float(value)
    return value


if __name__ == "__main__":
    main()
