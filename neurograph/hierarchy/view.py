"""A snapshot of the emergent hierarchy: levels as PyG graphs, lookups, networkx and pandas views.

:class:`Hierarchy` is what ``Engine.hierarchy()`` returns: a read-only picture of the alive tokens by
level at one engine tick (host tensors; ``h.levels[0].to("cuda")`` moves a level). Level ``L`` is a
:class:`torch_geometric.data.Data` with

- ``ids [n_L]`` public token ids (slot order, i.e. id order), ``pos``/``x [n_L, 8]``, ``mass``,
  ``radius``, ``strength`` ``[n_L]``, ``hits``, ``born`` ``[n_L]``;
- ``cluster [n_L]``: the row of each token's parent field in level ``L + 1`` (the assignment vector of
  PyG's pooling convention), ``-1`` for tokens in no field (select ``cluster >= 0`` before pooling,
  e.g. ``avg_pool_x``);
- ``edge_index [2, E_L]`` (rows of this level) and ``edge_weight [E_L]``: at level 0 the alive learned
  edges; at level ``L + 1`` those of level ``L`` coarsened through ``cluster`` (self-loops dropped,
  duplicates summed), as a pooling layer would.

Lookups by public id: ``parent(id)`` (``None`` at the top or outside any field), ``children(id)``,
``path(id)`` (the ids from the token up to the top), ``fields(level)`` (a DataFrame), ``assignment``
(the level-``L`` field of every level-0 token), ``ancestors(ids, level)``; exports ``to_networkx()``
(a forest of ``part_of`` arcs child -> parent) and ``to_pandas()`` (one row per token of every level).

What fields contain (with the engine's :class:`~neurograph.memory.TokenMemory`, as ``Engine.hierarchy()``
gives it): ``describe(field_id)`` (size, mass, label histogram, exemplars with payloads, distinguishing
terms, a name; :mod:`neurograph.hierarchy.describe`) and the ``label`` and ``name`` columns of
``to_pandas()`` / ``fields(level)``. Payloads are read from the memory when asked for.
torch_geometric is imported on the first snapshot, so that ``import neurograph`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from neurograph import display
from neurograph.errors import UnknownToken
from neurograph.hierarchy.describe import FieldDescription, distinguishing_terms, field_name
from neurograph.kinds import is_learned_kind
from neurograph.memory import TokenMemory, text_of
from neurograph.space import AXES
from neurograph.state import EdgeState, TokenState

if TYPE_CHECKING:
    from torch_geometric.data import Data

__all__ = ["Hierarchy"]


class Hierarchy:
    """Levels of tokens and fields at one tick (see the module docstring).

    Args:
        levels: one :class:`~torch_geometric.data.Data` per level, level 0 first.
        tick: the engine tick of the snapshot.
        memory: what the tokens stand for, with ``leaf_slots`` (the slot of each level-0 row) and
            ``labels`` (each row's label code per level, from ``TokenMemory.majority``).
    """

    def __init__(
        self,
        levels: list[Data],
        tick: int = 0,
        memory: TokenMemory | None = None,
        leaf_slots: np.ndarray | None = None,
        labels: list[np.ndarray] | None = None,
    ) -> None:
        self.levels = levels
        self.tick = int(tick)
        self.memory = memory
        self._leaf_slots = leaf_slots
        self._labels = labels
        self._terms: dict[tuple[int, int], dict[int, list[str]]] = {}  # (level, top) -> id -> terms
        self._frame: pd.DataFrame | None = None  # to_pandas, built once (the snapshot does not change)
        ids = [lv.ids.numpy() for lv in levels]
        self._ids = np.concatenate(ids) if ids else np.zeros(0, np.int64)  # every id, level by level
        self._level = np.concatenate([np.full(len(x), i) for i, x in enumerate(ids)]) if ids else self._ids
        self._parent = np.full(self._ids.size, -1, np.int64)  # parent id of each entry
        start = 0
        for i, lv in enumerate(levels[:-1]):
            c = lv.cluster.numpy()
            up = levels[i + 1].ids.numpy()
            self._parent[start : start + c.size] = np.where(c >= 0, up[np.maximum(c, 0)], -1)
            start += c.size
        self._order = np.argsort(self._ids, kind="stable")

    # --- construction -------------------------------------------------------------------------------
    @classmethod
    def from_state(
        cls, tokens: TokenState, edges: EdgeState, tick: int = 0, memory: TokenMemory | None = None
    ) -> Hierarchy:
        """Snapshot the alive tokens of a store, level by level (with ``memory``: what they stand for)."""
        from torch_geometric.data import Data  # imported here: it pulls in torch._dynamo (slow, heavy)

        n = tokens.count
        get = {name: t[:n].cpu() for name, t in tokens.tensors()}
        alive = get["alive"].numpy()
        level = get["level"].numpy().astype(np.int64)
        top = int(level[alive].max()) if alive.any() else 0
        row_of = np.full(n + 1, -1, np.int64)  # slot -> row in its level (last entry: none)
        slots_by_level = [np.nonzero(alive & (level == lv))[0] for lv in range(top + 1)]
        for slots in slots_by_level:
            row_of[slots] = np.arange(slots.size)
        m = edges.count
        e_ok = (edges.alive[:m] & is_learned_kind(edges.kind[:m])).cpu().numpy()
        src = edges.src[:m].cpu().numpy()[e_ok]
        dst = edges.dst[:m].cpu().numpy()[e_ok]
        w = edges.weight[:m].cpu().numpy()[e_ok].astype(np.float64)
        lvl0 = (
            (level[src] == 0) & (level[dst] == 0) & alive[src] & alive[dst] if src.size else src.astype(bool)
        )
        e_index = np.stack([row_of[src[lvl0]], row_of[dst[lvl0]]]) if src.size else np.zeros((2, 0), np.int64)
        e_weight = w[lvl0] if src.size else np.zeros(0)
        parent = get["parent"].numpy()
        levels = []
        for slots in slots_by_level:
            par = parent[slots]
            cluster = np.where(par >= 0, row_of[np.where(par >= 0, par, n)], -1)
            t = lambda name, s=slots: get[name][torch.from_numpy(s)]  # noqa: E731
            levels.append(
                Data(
                    x=t("pos"),
                    pos=t("pos"),
                    ids=t("ids"),
                    mass=t("mass"),
                    radius=t("radius"),
                    strength=t("strength"),
                    hits=t("hits").long(),
                    born=t("born"),
                    cluster=torch.from_numpy(cluster),
                    edge_index=torch.from_numpy(e_index.astype(np.int64)),
                    edge_weight=torch.from_numpy(e_weight.astype(np.float32)),
                    num_nodes=int(slots.size),
                )
            )
            e_index, e_weight = _coarsen(e_index, e_weight, cluster)
        if memory is None:
            return cls(levels, tick)
        codes = memory.majority(n, level, parent)
        labels = [codes[slots] for slots in slots_by_level]
        return cls(levels, tick, memory, slots_by_level[0] if slots_by_level else None, labels)

    # --- shape --------------------------------------------------------------------------------------
    @property
    def n_levels(self) -> int:
        """Levels held, the signal tokens' level 0 included."""
        return len(self.levels)

    def sizes(self) -> list[int]:
        """Tokens per level."""
        return [int(lv.num_nodes) for lv in self.levels]

    def __len__(self) -> int:
        return self.n_levels

    def __repr__(self) -> str:
        return f"Hierarchy(tick={self.tick}, tokens per level={self.sizes()})"

    # --- lookups by id ------------------------------------------------------------------------------
    def _entry(self, token_id: int) -> int:
        i = np.searchsorted(self._ids[self._order], token_id)
        if i >= self._ids.size or self._ids[self._order[i]] != token_id:
            raise UnknownToken(token_id)
        return int(self._order[i])

    def level_of(self, token_id: int) -> int:
        """The level of a token (raises :class:`~neurograph.errors.UnknownToken`)."""
        return int(self._level[self._entry(token_id)])

    def parent(self, token_id: int) -> int | None:
        """Id of the field holding the token; ``None`` at the top or outside any field."""
        p = self._parent[self._entry(token_id)]
        return None if p < 0 else int(p)

    def children(self, token_id: int) -> list[int]:
        """Ids of the tokens the field holds (ascending; empty for a level-0 token)."""
        self._entry(token_id)
        return sorted(int(i) for i in self._ids[self._parent == token_id])

    def path(self, token_id: int) -> list[int]:
        """The ids from the token up to the top: ``[id, parent, grandparent, ...]``."""
        out = [int(token_id)]
        p = self.parent(token_id)
        while p is not None:
            out.append(p)
            p = self.parent(p)
        return out

    def assignment(self, level: int = 1) -> np.ndarray:
        """Id of the level-``level`` field above every level-0 token (rows of ``levels[0]``), -1 none.

        Shapes:
            ``[n_0]`` int64.
        """
        if not self.levels:
            return np.zeros(0, np.int64)
        row = np.arange(self.levels[0].num_nodes)
        for lv in range(min(level, self.n_levels - 1)):
            c = self.levels[lv].cluster.numpy()
            row = np.where(row >= 0, c[np.maximum(row, 0)], -1)
        if level >= self.n_levels:
            return np.full(row.size, -1, np.int64)
        ids = self.levels[level].ids.numpy()
        return np.where(row >= 0, ids[np.maximum(row, 0)], -1)

    def ancestors(self, token_ids: Any, level: int = 1) -> np.ndarray:
        """Id of the level-``level`` field above each given level-0 token id (-1 none).

        Shapes:
            ``[B]`` ids -> ``[B]`` int64.
        """
        token_ids = np.asarray(token_ids, dtype=np.int64)
        base = self.levels[0].ids.numpy() if self.levels else np.zeros(0, np.int64)
        order = np.argsort(base)
        pos = np.searchsorted(base[order], token_ids)
        ok = (pos < base.size) & (base[order][np.minimum(pos, max(base.size - 1, 0))] == token_ids)
        if not ok.all():
            raise UnknownToken(int(token_ids[~ok][0]))
        return self.assignment(level)[order[pos]]

    # --- what fields contain ------------------------------------------------------------------------
    def describe(self, field_id: int, exemplars: int = 5, terms: int = 8) -> FieldDescription:
        """What a field contains: size, mass, the label histogram of the signals below it, the ``exemplars``
        level-0 tokens nearest its centre with their payloads, its distinguishing ``terms`` and a name.

        Raises:
            UnknownToken: ``field_id`` is not a token of this snapshot.
            InvalidArgument: the snapshot has no memory (made by ``Hierarchy.from_state`` without one).
        """
        memory = self._need_memory()
        entry = self._entry(field_id)
        lv = int(self._level[entry])
        rows = self._leaf_rows(field_id, lv)
        slots = self._leaf_slots[rows]
        counts = memory.label_counts(slots)
        labels = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
        field_terms = self._level_terms(lv, terms).get(int(field_id), []) if lv > 0 else []
        if self._frame is None:
            self._frame = self._build_frame()
        row = self._frame.iloc[entry]  # to_pandas lists the tokens in the order of the lookups
        centre = self.levels[lv].pos.numpy()[int(np.searchsorted(self.levels[lv].ids.numpy(), field_id))]
        pos = self.levels[0].pos.numpy()[rows]
        dist = np.sqrt(((pos.astype(np.float64) - centre) ** 2).sum(1))
        near = np.argsort(dist, kind="stable")[:exemplars]
        ex_slots = slots[near]
        payloads = [memory.payload(memory.origin[s]) if memory.origin[s] >= 0 else None for s in ex_slots]
        ex = pd.DataFrame(
            {
                "id": self.levels[0].ids.numpy()[rows][near],
                "distance": dist[near],
                "label": [memory.names[c] if c >= 0 else None for c in memory.label[ex_slots].tolist()],
                "payload": payloads,
                "text": [text_of(p) for p in payloads],
            }
        )
        return FieldDescription(
            id=int(field_id),
            level=lv,
            name=field_name(int(field_id), labels, field_terms),
            size=int(row["size"]),
            tokens=int(row["tokens"]),
            mass=float(row["mass"]),
            labels=labels,
            exemplars=ex,
            terms=field_terms,
        )

    def _need_memory(self) -> TokenMemory:
        if self.memory is None or self._leaf_slots is None:
            from neurograph.errors import InvalidArgument

            raise InvalidArgument("memory", None, "this Hierarchy was made without the engine's memory")
        return self.memory

    def _leaf_rows(self, token_id: int, level: int) -> np.ndarray:
        """Rows of ``levels[0]`` below the token (the token's own row at level 0)."""
        if level == 0:
            return np.searchsorted(self.levels[0].ids.numpy(), [token_id])
        return np.nonzero(self.assignment(level) == token_id)[0]

    def _level_terms(self, level: int, top: int = 8) -> dict[int, list[str]]:
        """The ``top`` distinguishing terms of every field of ``level`` (cached)."""
        if (level, top) not in self._terms:
            memory = self._need_memory()
            owner = self.assignment(level)
            ids = self.levels[level].ids.numpy()
            texts = memory.texts(self._leaf_slots, sampled=True)
            docs: dict[int, list[str]] = {int(i): [] for i in ids}
            for fid, text in zip(owner.tolist(), texts):
                if fid >= 0 and text:
                    docs[fid].append(text)
            keys = list(docs)
            terms = distinguishing_terms(["\n".join(docs[k]) for k in keys], top)
            self._terms[level, top] = dict(zip(keys, terms))
        return self._terms[level, top]

    # --- tables and graphs --------------------------------------------------------------------------
    def fields(self, level: int = 1) -> pd.DataFrame:
        """The fields of one level: id, level, parent (-1 none), size (children), tokens (level-0
        descendants), mass, radius, strength, hits, born, one column per axis."""
        frame = self.to_pandas()
        return frame[frame["level"] == level].reset_index(drop=True)

    def to_pandas(self) -> pd.DataFrame:
        """One row per token of every level (columns as :meth:`fields`; with the engine's memory also
        ``label``, the most frequent label of the signals below, and for fields ``name``). Built once per
        snapshot; each call returns a copy."""
        if self._frame is None:
            self._frame = self._build_frame()
        return self._frame.copy()

    def _build_frame(self) -> pd.DataFrame:
        rows = []
        below = None  # level-0 descendants of each row of the level below
        for lv, data in enumerate(self.levels):
            n = int(data.num_nodes)
            if lv == 0:
                size = np.zeros(n, np.int64)
                tokens = np.ones(n, np.int64)
            else:
                c = self.levels[lv - 1].cluster.numpy()
                inside = c >= 0
                size = np.bincount(c[inside], minlength=n)
                tokens = np.bincount(c[inside], weights=below[inside], minlength=n).astype(np.int64)
            below = tokens
            frame = {
                "id": data.ids.numpy(),
                "level": np.full(n, lv),
                "parent": np.zeros(n, np.int64),
                "size": size,
                "tokens": tokens,
                "mass": data.mass.numpy(),
                "radius": data.radius.numpy(),
                "strength": data.strength.numpy(),
                "hits": data.hits.numpy(),
                "born": data.born.numpy(),
            }
            pos = data.pos.numpy()
            frame.update({axis: pos[:, i] for i, axis in enumerate(AXES)})
            if self._labels is not None and self.memory is not None:
                names = np.asarray([*self.memory.names, None], dtype=object)
                codes = self._labels[lv]
                frame["label"] = names[np.where(codes >= 0, codes, len(self.memory.names))]
                if lv > 0:  # a field without a label is named by its terms (computed only then)
                    terms = self._level_terms(lv) if (codes < 0).any() else {}
                    frame["name"] = [
                        lab if lab is not None else field_name(int(i), {}, terms.get(int(i), []))
                        for i, lab in zip(frame["id"].tolist(), frame["label"].tolist())
                    ]
                else:
                    frame["name"] = np.full(n, None, dtype=object)
            rows.append(pd.DataFrame(frame))
        if not rows:
            return pd.DataFrame(columns=["id", "level", "parent", "size", "tokens", "mass", "radius"])
        out = pd.concat(rows, ignore_index=True)
        out["parent"] = self._parent
        return out

    def _repr_html_(self) -> str:
        return display.hierarchy_html(self)

    def to_networkx(self) -> Any:
        """A ``networkx.DiGraph``: one node per token (attributes level, mass, radius, pos), one arc
        child -> parent per ``part_of`` relation (attribute ``kind="part_of"``)."""
        import networkx as nx

        g = nx.DiGraph(tick=self.tick)
        frame = self.to_pandas()
        pos = frame[list(AXES)].to_numpy()
        for i, (tid, lv, mass, radius) in enumerate(
            zip(
                frame["id"].tolist(),
                frame["level"].tolist(),
                frame["mass"].tolist(),
                frame["radius"].tolist(),
            )
        ):
            g.add_node(tid, level=lv, mass=mass, radius=radius, pos=tuple(pos[i].tolist()))
        child = self._ids[self._parent >= 0].tolist()
        par = self._parent[self._parent >= 0].tolist()
        g.add_edges_from(zip(child, par), kind="part_of")
        return g


def _coarsen(e_index: np.ndarray, e_weight: np.ndarray, cluster: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edges of the level above, as PyG pools them: endpoints mapped through ``cluster``, edges leaving
    no field and self-loops dropped, each undirected pair once (smaller row first), weights summed
    (``torch_geometric.utils.coalesce``).

    Shapes:
        e_index ``[2, E]``, e_weight ``[E]``, cluster ``[n]`` -> ``([2, E'], [E'])``.
    """
    from torch_geometric.utils import coalesce

    if e_index.shape[1] == 0:
        return np.zeros((2, 0), np.int64), np.zeros(0)
    a, b = cluster[e_index[0]], cluster[e_index[1]]
    ok = (a >= 0) & (b >= 0) & (a != b)
    if not ok.any():
        return np.zeros((2, 0), np.int64), np.zeros(0)
    pairs = torch.from_numpy(np.stack([np.minimum(a[ok], b[ok]), np.maximum(a[ok], b[ok])]))
    index, weight = coalesce(pairs, torch.from_numpy(e_weight[ok].astype(np.float64)), reduce="sum")
    return index.numpy(), weight.numpy()
