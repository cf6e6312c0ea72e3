"""Command line: ``neurograph run [overrides]`` (the Hydra app), ``neurograph runs DIR``, ``neurograph demo``,
``neurograph serve`` (the streamer and REST API) and ``neurograph ws`` (print a streamer's events).

``run`` hands its arguments to the Hydra app of :mod:`neurograph.experiments.run` as they are (overrides
such as ``experiment=text_topics``, ``-m`` for a sweep, ``--cfg job`` to print the config); ``runs`` prints
the runs under a directory (a multirun's sweep directory) as one table.

``demo`` streams a real data set (scikit-learn's digits by default) through an engine one signal at a
time, with a progress bar, then emits it again as one batch into a fresh engine, and prints a summary
table: tokens, edges, novel rate, throughput.

``serve [--host 127.0.0.1] [--port 8000] [--path STORE] [--config FILE]`` runs the ASGI app of
:mod:`neurograph.server` on uvicorn (``docs/server.md``); ``ws --url URL --subscribe metrics,signals
[--token T] [--format pretty|json|compact]`` connects a :class:`~neurograph.client.Client` and prints each
event as it comes (``--count N`` stops after N events).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from neurograph.cdna import PROFILES

__all__ = ["demo", "main", "serve", "watch"]


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


def serve(args: argparse.Namespace) -> int:
    """``neurograph serve``: the settings from ``--config`` with the command line over them."""
    from neurograph.server import load_config
    from neurograph.server import serve as run_server

    config = load_config(args.config, host=args.host, port=args.port, path=args.path)
    if args.device:
        config = config.replace(engine={**config.engine, "device": args.device})
    run_server(config)
    return 0


def _format_event(event: dict, style: str) -> str:
    """One line per event: ``json`` (the message), ``compact`` or ``pretty``."""
    if style == "json":
        return json.dumps(event, separators=(",", ":"), default=str)
    data = event.get("data", {})
    clock = time.strftime("%H:%M:%S", time.localtime(event.get("timestamp", time.time())))
    if style == "compact":
        head = f"{event.get('id')} {event.get('channel')} {event.get('event_type')}"
        return f"{head} {json.dumps(data, default=str)}"
    fields = " ".join(f"{k}={v}" for k, v in data.items() if not isinstance(v, (dict, list)))
    return f"{clock} #{event.get('id')} [{event.get('channel')}] {event.get('event_type')}  {fields}"


def watch(args: argparse.Namespace) -> int:
    """``neurograph ws``: subscribe to channels and print their events until interrupted (or ``--count``)."""
    import asyncio
    import os

    from neurograph.client import Client, ClientError

    channels = [c.strip() for c in args.subscribe.split(",") if c.strip()]
    token = args.token or os.environ.get("NEUROGRAPH_TOKEN") or None

    async def run() -> int:
        done = asyncio.Event()
        seen = 0

        def show(event: dict) -> None:
            nonlocal seen
            print(_format_event(event, args.format), flush=True)
            seen += 1
            if args.count and seen >= args.count:
                done.set()

        async with Client(args.url, token=token) as client:
            granted = await client.subscribe(channels, show)
            denied = sorted(set(channels) - set(granted))
            if denied:
                print(f"denied for role {client.role}: {', '.join(denied)}", file=sys.stderr, flush=True)
            print(f"subscribed: {', '.join(granted)}", file=sys.stderr, flush=True)
            if args.duration:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(done.wait(), args.duration)
            else:
                await done.wait()
        return 0

    try:
        return asyncio.run(run())
    except ClientError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0


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
    p = sub.add_parser("serve", help="serve an engine: /ws streamer, REST /api/v1, health, metrics")
    p.add_argument("--host", default=None, help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="TCP port (default 8000)")
    p.add_argument("--path", default=None, help="store directory (persistent engine)")
    p.add_argument("--config", default=None, help="YAML or JSON server settings (docs/server.md)")
    p.add_argument("--device", default=None, help="engine device (cpu, cuda)")
    w = sub.add_parser("ws", help="print the events of a streamer's channels as they come")
    w.add_argument("--url", default="ws://127.0.0.1:8000/ws")
    w.add_argument("--subscribe", default="metrics,status", help="comma-separated channels")
    w.add_argument("--token", default=None, help="API key or JWT (default: $NEUROGRAPH_TOKEN)")
    w.add_argument("--format", default="pretty", choices=["pretty", "json", "compact"])
    w.add_argument("--count", type=int, default=0, help="stop after this many events (0: never)")
    w.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0: never)")
    args = parser.parse_args(argv)
    if args.command == "serve":
        return serve(args)
    if args.command == "ws":
        return watch(args)
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
