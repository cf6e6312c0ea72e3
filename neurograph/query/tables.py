"""Tables of the engine's state as pandas DataFrames (only alive rows; ids, not slots)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from neurograph.kinds import EDGE_GROUPS, ENTITY_KINDS, MUTABILITY
from neurograph.memory import TokenMemory
from neurograph.space import AXES
from neurograph.state import EdgeState, TokenState

__all__ = ["edges_frame", "tokens_frame"]

_GROUP_NAMES = {code: name for name, code in EDGE_GROUPS.items()}


def tokens_frame(t: TokenState, memory: TokenMemory | None = None) -> pd.DataFrame:
    """Alive tokens: id, kind, level, parent (id, -1 none), mass, radius, strength, hits, one column per
    axis, activation, born, seen; with ``memory`` also label and text (:func:`memory_columns`)."""
    n = t.count
    alive = t.alive[:n].cpu().numpy()
    sl = np.nonzero(alive)[0]
    get = {name: tensor[:n].cpu().numpy()[sl] for name, tensor in t.tensors() if name != "alive"}
    parent = get["parent"]
    parent_ids = np.where(parent >= 0, t.ids[:n].cpu().numpy()[np.maximum(parent, 0)], -1)
    data: dict[str, Any] = {
        "id": get["ids"],
        "kind": pd.Categorical.from_codes(get["kind"].astype(np.int64), categories=list(ENTITY_KINDS)),
        "level": get["level"].astype(np.int64),
        "parent": parent_ids,
        "mass": get["mass"],
        "radius": get["radius"],
        "strength": get["strength"],
        "hits": get["hits"].astype(np.int64),
    }
    for i, axis in enumerate(AXES):
        data[axis] = get["pos"][:, i]
    data.update(activation=get["activation"], born=get["born"], seen=get["seen"])
    if memory is not None:
        level = t.level[:n].cpu().numpy()
        data.update(memory_columns(memory, sl, level, t.parent[:n].cpu().numpy()))
    return pd.DataFrame(data)


def memory_columns(
    memory: TokenMemory, slots: np.ndarray, level: np.ndarray, parent: np.ndarray
) -> dict[str, Any]:
    """``label`` (:func:`label_codes` as names, missing: none) and ``text`` (the creating signal's
    payload text) of ``slots``.

    Shapes:
        slots ``[r]``; level, parent ``[n]`` over all used slots -> two columns of ``r`` values.
    """
    codes = label_codes(memory, level, parent)[slots]
    names = np.asarray([*memory.names, None], dtype=object)
    label = pd.Series(names[np.where(codes >= 0, codes, len(memory.names))], dtype="string")
    text = pd.Series(memory.texts(slots), dtype="string")
    return {"label": label.array, "text": text.array}


def label_codes(memory: TokenMemory, level: np.ndarray, parent: np.ndarray) -> np.ndarray:
    """The label code of every used slot: the creating signal's label; a field's, the most frequent
    label of the signals below it; -1 for none (:meth:`~neurograph.memory.TokenMemory.majority`).

    Shapes:
        level, parent ``[n]`` -> ``[n]`` int32.
    """
    return memory.majority(level.shape[0], level, parent)


def edges_frame(e: EdgeState, t: TokenState) -> pd.DataFrame:
    """Alive edges: id (edge slot), source and target (token ids), kind, relation group, weight, rest,
    confidence, mutability, evidence, updated (tick)."""
    m = e.count
    alive = e.alive[:m].cpu().numpy()
    sl = np.nonzero(alive)[0]
    get = {name: tensor[:m].cpu().numpy()[sl] for name, tensor in e.tensors() if name != "alive"}
    ids = t.ids[: t.count].cpu().numpy()
    kind = get["kind"].astype(np.int64)
    return pd.DataFrame(
        {
            "id": sl.astype(np.int64),
            "source": ids[get["src"]] if sl.size else np.zeros(0, np.int64),
            "target": ids[get["dst"]] if sl.size else np.zeros(0, np.int64),
            "kind": kind,
            "relation": [_GROUP_NAMES.get(k & 0xF0, "unknown") for k in kind],
            "weight": get["weight"],
            "rest": get["rest"],
            "confidence": get["confidence"],
            "mutability": [MUTABILITY[int(v)] for v in get["mutability"]],
            "evidence": get["evidence"].astype(np.int64),
            "updated": get["updated"],
        }
    )
