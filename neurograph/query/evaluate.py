"""Queries over the engine's state: ``find all nodes where type = 'concept' limit 10`` -> a DataFrame.

The language (grammar, parsed form, positioned errors) is in :mod:`neurograph.query.grammar`; this
module runs a parsed :class:`~neurograph.query.grammar.Query` against the token and edge stores.

**Tables.** ``tokens`` and ``nodes`` are every alive token, ``fields`` the alive tokens of level >= 1
(emergent fields), ``edges`` every alive edge. Their columns are those of :func:`~neurograph.query.tables.
tokens_frame` and :func:`~neurograph.query.tables.edges_frame` (``engine.tokens()`` / ``engine.edges()``),
and the result has exactly their columns and dtypes:

- tokens: ``id kind level parent mass radius strength hits <8 axis names> activation born seen``;
  ``type`` is another name for ``kind`` (entity kind names: ``'concept'``, ``'goal'``, ...);
- edges: ``id source target kind relation weight rest confidence mutability evidence updated``;
  ``type`` is another name for ``relation`` (the relation group: ``'causal'``, ``'associative'``, ...).

**Values.** Name columns (``kind``, ``relation``, ``mutability``) compare with quoted names by ``=``,
``!=``, ``in`` and ``not in``; an unknown name is an error that lists the valid ones (it is most likely a
typo). Every other column is numeric and compares with numbers (``parent = -1``: no parent field).
Comparisons follow numpy's rules, as ``engine.tokens()[...]`` would: a float32 column meets a literal in
float32, an integer column meets a float literal in float64.

**near.** ``near <8 numbers>`` or ``near "<text>"`` (a text needs an ``encoder``, ``str -> 8 floats``,
given to :func:`run_query` / ``Engine.query``) adds a ``distance`` column (the weighted metric of the
CDNA's ``axis_scale``, in float64) and orders the rows by it, nearest first; ``within r`` keeps the rows
with ``distance <= r``. ``distance`` can then be used in ``where`` and ``order by``. Edges have no
position: ``near`` on ``edges`` is an error.

**Order.** ``order by <column> [asc|desc]`` sorts as ``sort_values(kind="stable")`` would on the
frame: ``kind`` in the order of :data:`~neurograph.emit.results.ENTITY_KINDS` (the frame's Categorical),
``relation`` and ``mutability`` alphabetically; ties keep id order. An explicit ``order by`` wins over
the ``near`` order; without either, rows come in id order. ``limit`` and ``offset`` then cut the window.

**Evaluation.** Conditions become boolean masks over the used slots of the state tensors (CPU or CUDA;
no Python loop over tokens or edges: a loop runs only over the few literals of an ``in`` list), the
order is one stable sort of the selected rows, and the DataFrame is built only for the rows kept after
``offset``/``limit`` (one host transfer per column on CUDA). Queries never change the state.
"""

from __future__ import annotations

import operator
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from neurograph.errors import InvalidQuery
from neurograph.kinds import EDGE_GROUPS, ENTITY_KINDS, MUTABILITY
from neurograph.memory import TokenMemory
from neurograph.query.grammar import (
    Column,
    Compare,
    Condition,
    Contains,
    Literal,
    Member,
    Near,
    Not,
    Operand,
    Or,
    Query,
    QueryError,
    parse_query,
)
from neurograph.query.tables import label_codes, memory_columns
from neurograph.space import AXES, distance
from neurograph.state import EdgeState, TokenState

__all__ = ["EDGE_COLUMNS", "TOKEN_COLUMNS", "Encoder", "Query", "QueryError", "parse_query", "run_query"]

TOKEN_COLUMNS: tuple[str, ...] = (
    *("id", "kind", "level", "parent", "mass", "radius", "strength", "hits"),
    *AXES,
    *("activation", "born", "seen"),
)
MEMORY_COLUMNS: tuple[str, ...] = ("label", "text")  # token columns from the engine's memory
EDGE_COLUMNS: tuple[str, ...] = (
    "id",
    "source",
    "target",
    "kind",
    "relation",
    "weight",
    "rest",
    "confidence",
    "mutability",
    "evidence",
    "updated",
)
_ALIASES = {"tokens": {"type": "kind"}, "edges": {"type": "relation"}}
_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
# relation group of an edge kind: names[(kind & 0xF0) >> 4], "unknown" where no group is defined
_RELATIONS = tuple(
    {code: name for name, code in EDGE_GROUPS.items()}.get(g << 4, "unknown") for g in range(16)
)

Encoder = Callable[[str], Any]  # text -> 8 numbers


def run_query(
    query: str | Query,
    tokens: TokenState,
    edges: EdgeState,
    axis_scale: Sequence[float],
    *,
    encoder: Encoder | None = None,
    memory: TokenMemory | None = None,
) -> pd.DataFrame:
    """Run ``query`` against the stores and return the selected rows.

    Args:
        query: the text of a query or a parsed :class:`Query`.
        tokens: the token store (read only).
        edges: the edge store (read only).
        axis_scale: ``[8]`` scales of the weighted metric (the CDNA's ``axis_scale``) for ``near``.
        encoder: ``str -> 8 numbers``, needed by ``near "<text>"``.
        memory: what the tokens stand for: the ``label`` and ``text`` columns (none without it).

    Returns:
        A DataFrame with the columns of ``engine.tokens()`` / ``engine.edges()`` (plus ``distance`` with
        ``near``), one row per selected token or edge, in query order, index ``0..rows-1``.

    Raises:
        QueryError: a syntax error, an unknown column or name, a type mismatch, ``near`` without 8
            finite numbers (or without an encoder for a text), each with its line and column.
    """
    q = parse_query(query) if isinstance(query, str) else query
    if not isinstance(q, Query):
        raise InvalidQuery(f"a query must be a string or a Query, got {type(query).__name__}")
    table: _Table = _EdgeTable(edges, tokens) if q.table == "edges" else _TokenTable(tokens, q.table, memory)
    mask = table.rows()  # (n,) bool
    dist = None
    if q.near is not None:
        dist = table.distance(q, _point(q, q.near, encoder), axis_scale)  # (n,) float64
        if q.near.within is not None:
            mask &= dist <= q.near.within
    if q.where is not None:
        mask &= _Mask(q, table).condition(q.where)
    idx = torch.nonzero(mask).squeeze(1)  # (m,) slots, ascending = id order
    if q.order is not None:
        col, desc = q.order
        key = table.sort_key(q, col, idx)  # (m,)
        idx = idx[torch.sort(key, stable=True, descending=desc).indices]
    elif dist is not None:
        idx = idx[torch.sort(dist[idx], stable=True).indices]
    stop = None if q.limit is None else q.offset + q.limit
    idx = idx[q.offset : stop]
    return table.frame(idx)


def _point(q: Query, near: Near, encoder: Encoder | None) -> np.ndarray:
    if near.point is not None:
        return np.asarray(near.point, dtype=np.float64)
    if encoder is None:
        reason = f"near {near.text!r} needs a text encoder (str -> 8 numbers): pass encoder=... to the query"
        raise q.error(reason, near.pos)
    vec = encoder(near.text or "")
    if isinstance(vec, torch.Tensor):
        vec = vec.detach().cpu().numpy()
    point = np.asarray(vec, dtype=np.float64).reshape(-1)
    if point.shape != (8,) or not np.isfinite(point).all():
        raise q.error(
            f"the encoder gave {point.tolist()!r} for {near.text!r}, not 8 finite numbers", near.pos
        )
    return point


# --- tables --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Names:
    """A name column: integer ``codes [n]`` into ``names``; ``rank`` sorts the names for ``order by``."""

    column: str
    codes: torch.Tensor  # (n,) integer codes, the dtype of the state column
    names: tuple[str | None, ...]
    rank: tuple[int, ...]
    open: bool = False  # any name may be asked for (labels); an unknown one matches nothing

    def codes_of(self, q: Query, lit: Literal) -> list[int]:
        """Codes whose name is the string ``lit`` (an unknown name is an error listing the valid ones)."""
        if not isinstance(lit.value, str):
            raise q.error(
                f"column {self.column!r} holds names: compare it with a quoted name, got {lit}", lit.pos
            )
        hits = [i for i, name in enumerate(self.names) if name == lit.value]
        if not hits and self.open:
            return []
        if not hits:
            valid = tuple(dict.fromkeys(self.names))
            hint = ""
            if self.column == "kind":  # the seed's "where type = 'user'"
                hint = f" (type is the entity kind; a user-level type is a label: use label = {lit})"
            reason = f"unknown {self.column} {lit}; valid names are {', '.join(valid)}{hint}"
            raise q.error(reason, lit.pos, valid)
        return hits


@dataclass(frozen=True)
class _Texts:
    """A text column: one str or ``None`` per used slot (host values)."""

    column: str
    values: pd.Series  # (n,) string dtype, <NA> for none

    def contains(self, text: str, device: torch.device) -> torch.Tensor:
        hit = self.values.str.contains(text, case=False, regex=False).fillna(False)
        return torch.from_numpy(hit.to_numpy(dtype=bool)).to(device)


Value = torch.Tensor | _Names | _Texts | int | float | str  # an evaluated operand


class _Table(ABC):
    """Columns of one table over the used slots ``[:n]``, computed on first use."""

    name: str
    columns: tuple[str, ...]
    n: int
    device: torch.device

    def __init__(self) -> None:
        self._cache: dict[str, torch.Tensor | _Names | _Texts] = {}

    @abstractmethod
    def rows(self) -> torch.Tensor:
        """``[n]`` bool: which used slots are rows of this table."""

    @abstractmethod
    def compute(self, name: str) -> torch.Tensor | _Names | _Texts:
        """Column ``name`` over the used slots."""

    @abstractmethod
    def frame(self, idx: torch.Tensor) -> pd.DataFrame:
        """The selected rows as a DataFrame with the table's columns."""

    def distance(self, q: Query, point: np.ndarray, scale: Sequence[float]) -> torch.Tensor:
        """``[n]`` float64 weighted distances of the rows to ``point`` (also the ``distance`` column)."""
        pos = q.near.pos if q.near is not None else (1, 1)
        raise q.error(f"near needs positions; {self.name} have none (use tokens, nodes or fields)", pos)

    def column(self, q: Query, col: Column) -> torch.Tensor | _Names | _Texts:
        """The values of ``col`` (``[n]``), resolving aliases; unknown columns name the valid ones."""
        name = _ALIASES["edges" if self.name == "edges" else "tokens"].get(col.name, col.name)
        if name == "distance" and "distance" not in self._cache:
            raise q.error("column 'distance' needs a near clause", col.pos)
        if name not in self.columns and name != "distance":
            valid = (*self.columns, "type") + (("distance",) if "distance" in self._cache else ())
            raise q.error(
                f"unknown column {col.name!r} of {self.name}; columns: {', '.join(valid)}", col.pos, valid
            )
        if name not in self._cache:
            self._cache[name] = self.compute(name)
        return self._cache[name]

    def sort_key(self, q: Query, col: Column, idx: torch.Tensor) -> torch.Tensor:
        """``[m]`` sortable values of ``col`` at the rows ``idx``: numbers as they are, names by rank."""
        values = self.column(q, col)
        if isinstance(values, _Names):
            return torch.tensor(values.rank, device=self.device)[values.codes[idx].long()]
        if isinstance(values, _Texts):
            order = values.values.fillna("").rank(method="dense").to_numpy(dtype=np.int64)
            return torch.from_numpy(order).to(self.device)[idx]
        return values[idx]


class _TokenTable(_Table):
    def __init__(self, t: TokenState, name: str, memory: TokenMemory | None = None) -> None:
        super().__init__()
        self.t, self.name, self.memory = t, name, memory
        self.columns = TOKEN_COLUMNS + (MEMORY_COLUMNS if memory is not None else ())
        self.n, self.device = t.count, t.device

    def rows(self) -> torch.Tensor:
        alive = self.t.alive[: self.n].clone()  # (n,)
        return alive & (self.t.level[: self.n] >= 1) if self.name == "fields" else alive

    def compute(self, name: str) -> torch.Tensor | _Names | _Texts:
        t, n = self.t, self.n
        if name == "text" and self.memory is not None:  # only the texts: no label work
            return _Texts("text", pd.Series(self.memory.texts(np.arange(n)), dtype="string"))
        if name == "label" and self.memory is not None:  # only the codes: no payload decoding
            codes = label_codes(self.memory, t.level[:n].cpu().numpy(), t.parent[:n].cpu().numpy())
            names = (None, *self.memory.names)  # code + 1; 0: no label
            rank = tuple(np.argsort(np.argsort(np.array(["", *self.memory.names], dtype=object))).tolist())
            return _Names(
                "label", torch.from_numpy(codes.astype(np.int64) + 1).to(self.device), names, rank, open=True
            )
        if name == "kind":
            ranks = tuple(range(len(ENTITY_KINDS)))  # the frame's Categorical sorts by code
            return _Names("kind", t.kind[:n], ENTITY_KINDS, ranks)
        if name == "id":
            return t.ids[:n]
        if name == "parent":
            return _parent_ids(t, t.parent[:n])
        if name in AXES:
            return t.pos[:n, AXES.index(name)]
        return getattr(t, name)[:n]

    def distance(self, q: Query, point: np.ndarray, scale: Sequence[float]) -> torch.Tensor:
        p = torch.as_tensor(point, dtype=torch.float64, device=self.device)  # (8,)
        s = torch.as_tensor(scale, dtype=torch.float64, device=self.device)  # (8,)
        dist = distance(self.t.pos[: self.n].double(), p, s)  # (n,)
        self._cache["distance"] = dist
        return dist

    def frame(self, idx: torch.Tensor) -> pd.DataFrame:
        t = self.t

        def get(name: str) -> np.ndarray:
            return getattr(t, name)[idx].cpu().numpy()

        pos = get("pos")  # (r, 8)
        data: dict[str, Any] = {
            "id": get("ids"),
            "kind": pd.Categorical.from_codes(get("kind").astype(np.int64), categories=list(ENTITY_KINDS)),
            "level": get("level").astype(np.int64),
            "parent": _parent_ids(t, t.parent[idx]).cpu().numpy(),
            "mass": get("mass"),
            "radius": get("radius"),
            "strength": get("strength"),
            "hits": get("hits").astype(np.int64),
        }
        for i, axis in enumerate(AXES):
            data[axis] = pos[:, i]
        data.update(activation=get("activation"), born=get("born"), seen=get("seen"))
        if self.memory is not None:
            n = self.n
            level, parent = t.level[:n].cpu().numpy(), t.parent[:n].cpu().numpy()
            data.update(memory_columns(self.memory, idx.cpu().numpy(), level, parent))
        if "distance" in self._cache:
            data["distance"] = self._cache["distance"][idx].cpu().numpy()
        return pd.DataFrame(data)


class _EdgeTable(_Table):
    def __init__(self, e: EdgeState, t: TokenState) -> None:
        super().__init__()
        self.e, self.t, self.name, self.columns = e, t, "edges", EDGE_COLUMNS
        self.n, self.device = e.count, e.device

    def rows(self) -> torch.Tensor:
        return self.e.alive[: self.n].clone()  # (n,)

    def compute(self, name: str) -> torch.Tensor | _Names:
        e, n = self.e, self.n
        if name == "id":
            return torch.arange(n, device=self.device)
        if name in ("source", "target"):
            ends = (e.src if name == "source" else e.dst)[:n]
            return self.t.ids[ends.clamp_min(0)]
        if name == "relation":
            return _Names("relation", (e.kind[:n] & 0xF0) >> 4, _RELATIONS, _alphabetical(_RELATIONS))
        if name == "mutability":
            return _Names("mutability", e.mutability[:n], MUTABILITY, _alphabetical(MUTABILITY))
        return getattr(e, name)[:n]

    def frame(self, idx: torch.Tensor) -> pd.DataFrame:
        e, ids = self.e, self.t.ids

        def get(name: str) -> np.ndarray:
            return getattr(e, name)[idx].cpu().numpy()

        kind = get("kind").astype(np.int64)
        return pd.DataFrame(
            {
                "id": idx.cpu().numpy().astype(np.int64),
                "source": ids[e.src[idx]].cpu().numpy(),
                "target": ids[e.dst[idx]].cpu().numpy(),
                "kind": kind,
                "relation": _strings(_RELATIONS, (kind & 0xF0) >> 4),
                "weight": get("weight"),
                "rest": get("rest"),
                "confidence": get("confidence"),
                "mutability": _strings(MUTABILITY, get("mutability")),
                "evidence": get("evidence").astype(np.int64),
                "updated": get("updated"),
            }
        )


def _parent_ids(t: TokenState, parent: torch.Tensor) -> torch.Tensor:
    """Ids of parent slots (``-1`` stays ``-1``)."""
    return torch.where(parent >= 0, t.ids[parent.clamp_min(0)], torch.full_like(parent, -1))


def _strings(names: tuple[str, ...], codes: np.ndarray) -> pd.Series:
    """``names[codes]`` with the string dtype pandas infers for a list of str (also when empty)."""
    return pd.Series(np.asarray(names, dtype=object)[codes], dtype=_STR_DTYPE)


_STR_DTYPE = pd.Series(["a"]).dtype  # pandas 3: str; pandas 2: object


def _alphabetical(names: tuple[str, ...]) -> tuple[int, ...]:
    order = sorted(set(names))
    return tuple(order.index(name) for name in names)


# --- conditions ----------------------------------------------------------------------------------------
class _Mask:
    """Evaluates a condition to a boolean mask ``[n]`` over the table's slots."""

    def __init__(self, q: Query, table: _Table) -> None:
        self.q, self.table = q, table

    def condition(self, c: Condition) -> torch.Tensor:
        if isinstance(c, Or):
            return _reduce(torch.logical_or, [self.condition(p) for p in c.parts])
        if isinstance(c, Not):
            return ~self.condition(c.part)
        if isinstance(c, Compare):
            return self.full(self.compare(c))
        if isinstance(c, Member):
            return self.full(self.member(c))
        if isinstance(c, Contains):
            return self.contains(c)
        return _reduce(torch.logical_and, [self.condition(p) for p in c.parts])  # And

    def full(self, mask: torch.Tensor | bool) -> torch.Tensor:
        if isinstance(mask, torch.Tensor):
            return mask
        return torch.full((self.table.n,), bool(mask), device=self.table.device)  # literal vs literal

    def value(self, operand: Operand) -> Value:
        if isinstance(operand, Column):
            return self.table.column(self.q, operand)
        return operand.value

    def compare(self, c: Compare) -> torch.Tensor | bool:
        left, right = self.value(c.left), self.value(c.right)
        if isinstance(left, _Names) or isinstance(right, _Names):
            return self.compare_names(c, left, right)
        if isinstance(left, str) != isinstance(right, str):
            lit = c.left if isinstance(left, str) else c.right
            other = c.right if lit is c.left else c.left
            raise self.q.error(f"{other} is numeric: compare it with a number, got {lit}", lit.pos)
        if isinstance(left, str):  # two string literals
            return _OPS[c.op](left, right)
        return _OPS[c.op](*_promote(left, right))

    def compare_names(self, c: Compare, left: Value, right: Value) -> torch.Tensor | bool:
        if c.op not in ("=", "!="):
            col = c.left if isinstance(left, _Names) else c.right
            raise self.q.error(f"column {col} holds names: use = != in, not {c.op}", c.pos)
        if isinstance(left, _Names) and isinstance(right, _Names):
            if left.names != right.names:
                raise self.q.error(f"cannot compare {c.left} with {c.right}: different names", c.pos)
            hit = left.codes == right.codes
        else:
            names, lit = (left, c.right) if isinstance(left, _Names) else (right, c.left)
            assert isinstance(names, _Names)
            if isinstance(lit, Column):  # a numeric column against a name column
                raise self.q.error(f"cannot compare {c.left} with {c.right}: names and numbers", c.pos)
            hit = _isin(names.codes, names.codes_of(self.q, lit))
        return hit if c.op == "=" else ~hit

    def contains(self, c: Contains) -> torch.Tensor:
        values = self.value(c.operand)
        if not isinstance(values, _Texts):
            raise self.q.error(f"contains needs a text column (text), got {c.operand}", c.pos)
        hit = values.contains(str(c.text.value), self.table.device)
        return ~hit if c.negated else hit

    def member(self, m: Member) -> torch.Tensor | bool:
        values = self.value(m.operand)
        if isinstance(values, _Names):
            codes = [code for lit in m.values for code in values.codes_of(self.q, lit)]
            hit: torch.Tensor | bool = _isin(values.codes, sorted(set(codes)))
        elif isinstance(values, torch.Tensor):
            for lit in m.values:
                if isinstance(lit.value, str):
                    raise self.q.error(f"{m.operand} is numeric: list numbers, got {lit}", lit.pos)
            nums = [lit.value for lit in m.values]
            if not values.is_floating_point() and all(isinstance(v, int) for v in nums):
                info = torch.iinfo(values.dtype)  # values outside the dtype's range never match
                hit = _isin(values, sorted({v for v in nums if info.min <= v <= info.max}))
            else:  # a loop over the few listed values, not over rows
                hit = _reduce(torch.logical_or, [operator.eq(*_promote(values, v)) for v in nums])
        else:  # a literal operand
            hit = any(_same_kind(values, lit.value) and values == lit.value for lit in m.values)
        if m.negated:
            return ~hit if isinstance(hit, torch.Tensor) else not hit
        return hit


def _promote(a: Any, b: Any) -> tuple[Any, Any]:
    """Operands of a comparison with numpy's results: an integer column meets a float (literal or column)
    in float64, exactly; an integer literal outside the column's dtype goes to int64 (torch would wrap
    it). A float32 column meets a literal in float32, as in numpy."""
    if not isinstance(a, torch.Tensor):
        if not isinstance(b, torch.Tensor):  # two literals
            return a, b
        b, a = _promote(b, a)
        return a, b
    if isinstance(b, torch.Tensor):
        mixed = a.is_floating_point() != b.is_floating_point()
        return (a.double(), b.double()) if mixed else (a, b)
    if a.is_floating_point() or isinstance(b, str):
        return a, b
    if isinstance(b, float):
        return a.double(), b
    info = torch.iinfo(a.dtype)
    return (a, b) if info.min <= b <= info.max else (a.long(), b)


def _same_kind(a: Any, b: Any) -> bool:
    return isinstance(a, str) == isinstance(b, str)


def _isin(values: torch.Tensor, wanted: list[int]) -> torch.Tensor:
    """``values [n]`` in ``wanted`` (ints within the dtype's range): a few ``==``, or one ``isin``."""
    if not wanted:
        return torch.zeros_like(values, dtype=torch.bool)
    if len(wanted) > 16:
        return torch.isin(values, torch.tensor(wanted, dtype=values.dtype, device=values.device))
    return _reduce(torch.logical_or, [values == w for w in wanted])


def _reduce(
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], masks: list[torch.Tensor]
) -> torch.Tensor:
    out = masks[0]
    for m in masks[1:]:
        out = fn(out, m)
    return out
