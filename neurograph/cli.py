"""Command line: ``neurograph run [overrides]`` (the Hydra app), ``neurograph runs DIR``, ``neurograph demo``.

``run`` hands its arguments to the Hydra app of :mod:`neurograph.experiments.run` as they are (overrides
such as ``experiment=text_topics``, ``-m`` for a sweep, ``--cfg job`` to print the config); ``runs`` prints
the runs under a directory (a multirun's sweep directory) as one table.

``demo`` streams a real data set (scikit-learn's digits by default) through an engine one signal at a
time, with a progress bar, then emits it again as one batch into a fresh engine, and prints a summary
table: tokens, edges, novel rate, throughput.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from neurograph.cdna import PROFILES

__all__ = ["demo", "main"]


def demo(dataset: str = "digits", device: str = "cpu", profile: str = "auto", seed: int = 0) -> pd.DataFrame:
    """Stream ``dataset`` through an engine signal by signal and as one batch; returns the summary.

    ``profile="auto"`` calibrates the default CDNA to the data (:meth:`~neurograph.cdna.CDNA.calibrate`);
    any other name is a fixed profile. The batch engine's hierarchy is built and its fields per level are
    printed with their NMI against the labels.
    """
    from sklearn.metrics import normalized_mutual_info_score

    from neurograph.cdna import CDNA
    from neurograph.datasets import load
    from neurograph.engine import Engine

    x, labels = load(dataset)
    cdna = CDNA.calibrate(x) if profile == "auto" else CDNA.profile(profile)
    event_type = f"signal.input.external.dataset.{dataset}"
    rows = []
    eng = Engine(device=device, cdna=cdna, seed=seed)
    t0 = time.perf_counter()
    novel = 0
    for v in tqdm(x, desc=f"emit {dataset}", unit="signal"):
        novel += eng.emit(event_type, v).is_novel
    secs = time.perf_counter() - t0
    rows.append(_summary("emit (one by one)", eng, len(x), novel, secs))
    batch_eng = Engine(device=device, cdna=cdna, seed=seed)
    t0 = time.perf_counter()
    b = batch_eng.emit_batch(event_type, x)
    secs = time.perf_counter() - t0
    rows.append(_summary("emit_batch", batch_eng, len(x), int(b.is_novel.sum()), secs))
    table = pd.DataFrame(rows).set_index("mode")
    purity = _purity(b.token_ids.numpy(), labels)
    print(f"\n{dataset}: {len(x)} signals, {len(np.unique(labels))} classes, device {device}, CDNA {profile}")
    print(table.to_string(float_format=lambda v: f"{v:,.3f}"))
    print(f"label purity of familiar signals' tokens: {purity:.3f}")
    h = batch_eng.hierarchy()
    ids = b.token_ids.numpy()
    for level in range(1, h.n_levels):
        fields = h.ancestors(ids, level)
        n_fields = len(np.unique(fields[fields >= 0]))
        score = normalized_mutual_info_score(labels, fields)
        print(f"level {level}: {n_fields} field(s), NMI against the {dataset} labels {score:.3f}")
    return table


def _summary(mode: str, eng: object, n: int, novel: int, secs: float) -> dict[str, object]:
    s = eng.stats()  # type: ignore[attr-defined]
    return {
        "mode": mode,
        "signals": n,
        "tokens": s["tokens"],
        "edges": s["edges"],
        "novel_rate": novel / n,
        "seconds": secs,
        "signals_per_s": n / secs,
    }


def _purity(token_ids: np.ndarray, labels: np.ndarray) -> float:
    """Share of signals whose token's majority label is their own label."""
    frame = pd.DataFrame({"token": token_ids, "label": labels})
    majority = frame.groupby("token")["label"].agg(lambda s: s.value_counts().index[0])
    return float((frame["label"].to_numpy() == majority.loc[frame["token"]].to_numpy()).mean())


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["run"]:  # everything after `run` belongs to Hydra (it reads sys.argv)
        from neurograph.experiments.run import main as hydra_main

        saved = sys.argv
        sys.argv = ["neurograph run", *argv[1:]]
        try:
            hydra_main()
        finally:
            sys.argv = saved
        return 0
    parser = argparse.ArgumentParser(prog="neurograph", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="stream a data set through an engine and print a summary")
    p.add_argument("--dataset", default="digits", choices=["digits", "iris", "blobs"])
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--profile", default="auto", choices=["auto", *PROFILES], help="auto: calibrated to the data"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default="", help="also write the summary table as JSON here")
    sub.add_parser("run", help="run an experiment (Hydra overrides follow, e.g. experiment=text_topics)")
    r = sub.add_parser("runs", help="print the runs under a directory (a multirun sweep dir) as one table")
    r.add_argument("dir")
    r.add_argument("--csv", default="", help="also write the table as CSV here")
    args = parser.parse_args(argv)
    if args.command == "runs":
        from neurograph.experiments.collect import collect_runs

        table = collect_runs(args.dir)
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        if args.csv:
            table.to_csv(args.csv, index=False)
    if args.command == "demo":
        table = demo(args.dataset, args.device, args.profile, args.seed)
        if args.json:
            with open(args.json, "w") as fh:
                json.dump(table.reset_index().to_dict(orient="records"), fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
