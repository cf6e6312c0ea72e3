"""Snapshots: every tensor of an engine in one safetensors file, with JSON metadata, written atomically.

A snapshot holds the used rows of every token and edge column (``tokens.<name>``, ``edges.<name>``), the
adjacency tables of the learned edges as they were (``edges.adj``, ``edges.nbr`` up to the largest
degree, ``edges.degree``: their order decides ties, so they are kept rather than rebuilt) and the state
of the engine's torch generator (``rng.torch``). The safetensors header carries two strings:
``neurograph``, the JSON metadata (format version, the sequence number of the last log record the
snapshot includes, tick, counters, next id, capacities, seed, the numpy generator state, the Guardian's
counters, the whole CDNA history, and the engine state other modules registered with
:func:`register_state`), and ``digest``, a CRC-32 of that JSON and of every tensor's bytes, so that a
truncated or bit-rotten file is caught, not loaded.

Tensors are stored on the CPU: a snapshot written on CUDA opens on the CPU and back. The torch generator
state is device-specific: on another device type the generator is re-seeded from the seed and the tick.

Writing: to a temporary file in the same directory, fsynced, renamed over the final name
(``<seq>.safetensors``, twelve digits), then the directory is fsynced: a crash at any moment leaves either
the old set of snapshots or the new one, plus at most a stray temporary file (removed at the next open).
"""

from __future__ import annotations

import json
import os
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from neurograph.cdna import CDNAHistory
from neurograph.errors import StoreError
from neurograph.persist.format import FORMAT_VERSION, Engine, check_format, jsonable

__all__ = [
    "STATE",
    "DamagedSnapshot",
    "StateField",
    "capture",
    "list_snapshots",
    "read_snapshot",
    "register_state",
    "remove_temporaries",
    "restore",
    "snapshot_name",
    "write_snapshot",
]

SUFFIX = ".safetensors"
_TMP = ".tmp"
_ADJ = ("adj", "nbr", "degree")


class DamagedSnapshot(StoreError):
    """A snapshot file is truncated, corrupted or incomplete (the store falls back to an older one)."""


@dataclass(frozen=True)
class StateField:
    """A piece of engine state outside the tensors that snapshots carry: a JSON-able value read by
    ``get_fn(engine)`` and put back by ``set_fn(engine, value)``."""

    name: str
    get_fn: Callable[[Any], Any]
    set_fn: Callable[[Any, Any], None]


#: name -> :class:`StateField`; extend with :func:`register_state`
STATE: dict[str, StateField] = {}


def register_state(
    name: str,
    get_fn: Callable[[Any], Any] | None = None,
    set_fn: Callable[[Any, Any], None] | None = None,
) -> None:
    """Make snapshots carry a JSON-able piece of engine state (e.g. a counter of the dynamics).

    Without functions, ``name`` is an engine attribute: ``register_state("_learned_at")``; otherwise
    ``register_state("dynamics.steps", lambda e: e.dynamics.steps, lambda e, v: setattr(e.dynamics,
    "steps", v))``. A snapshot holding a name that is not registered (an extension not imported) ignores it.
    """
    get = get_fn if get_fn is not None else (lambda engine: getattr(engine, name))
    put = set_fn if set_fn is not None else (lambda engine, value: setattr(engine, name, value))
    STATE[name] = StateField(name, get, put)


# snapshots carry the dynamics' step counter (the neighbour list is rebuilt), the upkeep clock and the steps
# since the last hierarchy rebuild; the log re-runs the operations after them
register_state("dynamics.steps", lambda e: e.dynamics.steps, lambda e, v: setattr(e.dynamics, "steps", v))
register_state("_learned_at")
register_state("_hierarchy_steps")
register_state("options", lambda e: e.options, lambda e, v: e._set_options(v))  # Engine.options


# --- engine <-> (tensors, metadata) -----------------------------------------------------------------
def capture(engine: Engine, seq: int) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Everything needed to rebuild ``engine``: CPU tensors and JSON-able metadata.

    Args:
        engine: the engine.
        seq: sequence number of the last log record the state includes.

    Returns:
        ``(tensors, meta)``.
    """
    t, e = engine.token_state, engine.edge_state
    tensors = {f"tokens.{k}": v for k, v in t.state_dict().items()}
    tensors.update({f"edges.{k}": v for k, v in e.state_dict().items()})
    rows = t.count  # only slots in use can have edges ...
    degree = e.degree[:rows].detach().cpu().contiguous()
    width = int(degree.max()) if rows else 0  # ... and columns past the largest degree are empty
    tensors["edges.degree"] = degree
    tensors["edges.adj"] = e.adj[:rows, :width].detach().cpu().contiguous()
    tensors["edges.nbr"] = e.nbr[:rows, :width].detach().cpu().contiguous()
    tensors["rng.torch"] = engine.generator.get_state().cpu()
    for name, array in engine.memory.state_dict(t.count).items():  # what tokens stand for
        tensors[f"memory.{name}"] = torch.from_numpy(np.ascontiguousarray(array))
    g = engine.guardian
    meta = {
        "format_version": FORMAT_VERSION,
        "kind": "neurograph.snapshot",
        "created": time.time(),
        "seq": int(seq),
        "device": str(engine.device),
        "generator_device": engine.generator.device.type,
        "seed": engine.seed,
        "tick": engine.tick,
        "counters": dict(engine._counters),
        "next_id": t.next_id,
        "token_capacity": t.capacity,
        "edge_capacity": e.capacity,
        "node_rows": e.adj.shape[0],
        "degree_width": e.adj.shape[1],
        "numpy_rng": engine.rng.bit_generator.state,
        "guardian": {"rejected": g.rejected, "clamped": g.clamped, "quota_refusals": g.quota_refusals},
        "history": engine.history.to_dict(),
        "memory_labels": list(engine.memory.names),
        "state": _extra_state(engine),
    }
    return tensors, meta


def _extra_state(engine: Engine) -> dict[str, Any]:
    """The registered state fields (one whose attribute does not exist yet is left out)."""
    out = {}
    for name, f in sorted(STATE.items()):
        try:
            out[name] = f.get_fn(engine)
        except AttributeError:
            continue
    return out


def restore(engine: Engine, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Load ``(tensors, meta)`` from :func:`capture` into ``engine`` in place, on the engine's device.

    The token and edge stores are reloaded (capacities grow to at least the saved ones), the adjacency
    tables restored row for row, the CDNA history, tick, counters, seed and generators replaced, and the
    neighbour index invalidated.
    """
    dev = engine.device
    t, e = engine.token_state, engine.edge_state
    tok = {k.split(".", 1)[1]: v for k, v in tensors.items() if k.startswith("tokens.")}
    edg = {
        k.split(".", 1)[1]: v
        for k, v in tensors.items()
        if k.startswith("edges.") and k.split(".", 1)[1] not in _ADJ
    }
    t.load_state_dict(tok, next_id=int(meta["next_id"]))
    t.grow(int(meta["token_capacity"]))
    rows = max(int(meta["node_rows"]), t.capacity)
    e.ensure_nodes(rows, int(meta["degree_width"]))
    e.load_state_dict(edg, node_capacity=rows)
    e.grow(int(meta["edge_capacity"]))
    adj = tensors.get("edges.adj")
    if adj is not None and adj.shape[0]:
        n, width = adj.shape
        e.adj[:n] = -1
        e.nbr[:n] = -1
        e.adj[:n, :width] = adj.to(dev)
        e.nbr[:n, :width] = tensors["edges.nbr"].to(dev)
        e.degree[:n] = tensors["edges.degree"].to(dev)
    engine.history = CDNAHistory.from_dict(meta["history"])
    engine.tick = int(meta["tick"])
    engine._counters.update({k: int(v) for k, v in meta["counters"].items()})
    engine.seed = int(meta["seed"])
    engine.rng = np.random.default_rng(engine.seed)
    engine.rng.bit_generator.state = meta["numpy_rng"]
    state = tensors.get("rng.torch")
    if state is not None and meta.get("generator_device") == engine.generator.device.type:
        engine.generator.set_state(state.cpu())
    else:  # another device type: its generator state cannot be carried over
        engine.generator.manual_seed(engine.seed + engine.tick)
    g = engine.guardian
    for name, value in meta.get("guardian", {}).items():
        setattr(g, name, int(value))
    for name, value in meta.get("state", {}).items():
        if name in STATE:
            STATE[name].set_fn(engine, value)
    mem = {k.split(".", 1)[1]: v.numpy() for k, v in tensors.items() if k.startswith("memory.")}
    if mem:  # snapshots from before labels and payloads have none
        engine.memory.load_state_dict(mem, meta.get("memory_labels", []))
    engine.memory.set_sample_size(engine.cdna.memory_sample)
    engine.index.set_scale(engine.cdna.axis_scale)  # the metric of the restored CDNA; invalidates


# --- files ------------------------------------------------------------------------------------------
def snapshot_name(seq: int) -> str:
    """File name of the snapshot that includes the log up to ``seq``."""
    return f"{seq:012d}{SUFFIX}"


def write_snapshot(
    directory: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any], fsync: bool = True
) -> Path:
    """Write a snapshot atomically (temp file, fsync, rename, fsync of the directory); returns its path."""
    text = json.dumps(meta, separators=(",", ":"), sort_keys=True, default=jsonable)
    final = directory / snapshot_name(int(meta["seq"]))
    tmp = directory / f".{final.name}.{os.getpid()}{_TMP}"
    save_file(tensors, str(tmp), metadata={"neurograph": text, "digest": _digest(text, tensors)})
    if fsync:
        _fsync_path(tmp)
    os.replace(tmp, final)
    if fsync:
        _fsync_path(directory)
    return final


def read_snapshot(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read and verify a snapshot (CPU tensors, metadata).

    Raises:
        DamagedSnapshot: truncated, corrupted, or its digest does not match.
        StoreError: written by a newer format version.
    """
    try:
        with safe_open(str(path), "pt") as f:
            header = f.metadata() or {}
        tensors = load_file(str(path), device="cpu")
        text = header["neurograph"]
        meta = json.loads(text)
    except (SafetensorError, OSError, KeyError, ValueError, RuntimeError) as exc:
        raise DamagedSnapshot(f"{path}: damaged snapshot ({type(exc).__name__}: {exc})") from exc
    if not isinstance(meta, dict) or meta.get("kind") != "neurograph.snapshot":
        raise DamagedSnapshot(f"{path}: not a neurograph snapshot")
    check_format(meta.get("format_version"), str(path))
    if header.get("digest") != _digest(text, tensors):
        raise DamagedSnapshot(f"{path}: damaged snapshot (digest mismatch)")
    return tensors, meta


def list_snapshots(directory: Path) -> list[tuple[int, Path]]:
    """``(seq, path)`` of the snapshot files in ``directory``, newest first."""
    out = []
    for p in directory.glob(f"*{SUFFIX}"):
        stem = p.name[: -len(SUFFIX)]
        if stem.isdigit():
            out.append((int(stem), p))
    return sorted(out, reverse=True)


def remove_temporaries(directory: Path) -> int:
    """Delete temporary files left by a crash during a snapshot; returns how many."""
    n = 0
    for p in directory.glob(f".*{_TMP}"):
        p.unlink(missing_ok=True)
        n += 1
    return n


def _digest(text: str, tensors: dict[str, torch.Tensor]) -> str:
    """CRC-32 of the metadata and of every tensor's name and bytes (catches truncation and bit rot at
    2 GB/s; not a defence against deliberate tampering)."""
    crc = zlib.crc32(text.encode())
    for name in sorted(tensors):
        crc = zlib.crc32(name.encode(), crc)
        arr = tensors[name].detach().cpu().contiguous().numpy()
        crc = zlib.crc32(np.ascontiguousarray(arr).view(np.uint8).data, crc)
    return f"crc32:{crc:08x}"


def _fsync_path(path: Path) -> None:
    fd = os.open(str(path), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
