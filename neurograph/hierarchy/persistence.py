"""Persistence of the basins of a graph: the 0-dimensional diagram of its superlevel sets (DESIGN §5).

The tokens of a level are the vertices of a graph; vertex ``i`` has the height ``phi_i`` (its log mass
density) and edge ``e = (i, j)`` the height ``w_e <= min(phi_i, phi_j)`` (its *saddle*). The superlevel
set at level ``t`` keeps the vertices and edges at least ``t`` high. Lowering ``t`` from ``+inf``, a
component is born at each local peak and two components merge at the edge that first joins them; by the
*elder rule* the one with the lower peak dies there. Peak ``p`` dying at ``t`` has the *persistence*
``phi_p - t`` (how far it rises above the saddle where it meets a higher peak); the highest peak of each
connected component never dies (infinite persistence). Vertices that are not peaks die at their own
height (persistence 0). ToMATo (Chazal, Guibas, Oudot, Skraba, J. ACM 2013) clusters by keeping the
peaks of persistence at least ``tau`` and merging every other peak into the cluster across the edge where
it dies (and every other vertex into its steepest neighbour's).

:func:`persistence_pairs` computes, for every vertex, the height at which it dies and the vertex across
the edge where it dies, with tensor ops on the graph's device, in *rounds* (a Borůvka-style contraction
with the elder rule): every current component takes its highest edge to another component (ties: toward
the higher peak, then the higher vertex); when that edge leads to a higher peak, the component dies
there, exactly at that edge's height, and is contracted into the other one. Exactness: every path from
the component to a higher peak leaves it through one of its edges, none higher than the one taken, so
the death is that edge's height; and contracting a component along its own highest edge leaves every
other component's best path (its bottleneck) unchanged, so the rounds can contract all such components
at once, in any order. Without ties between edge heights the edge taken is the one where the
sequential union-find (:func:`persistence_pairs_reference`, used by the tests) kills the component: the
results are equal, not an approximation (with ties, the deaths still are; the edge may be another one of
the same height). The first round is steepest ascent (a vertex's highest edge, at its own height, goes
to its highest neighbour); each later round contracts, in each connected component, at least the
component with the lowest peak, and keeps only the best edge between each pair of components.

:func:`threshold` chooses ``tau`` (``field_persistence_rule``): ``"fixed"`` takes ``field_persistence``;
``"gap"`` takes the middle of the widest gap of the diagram, floored by ``field_persistence``.
:func:`cut` turns the diagram and ``tau`` into basins (and merges the basins too small to be fields into
the basins they meet at their death). The pointers a cut follows only ever lead from a component to one
with a higher peak, or inside a component to where it was contracted, so they end (no cycles).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from neurograph.cdna import PERSISTENCE_RULES as RULES

__all__ = ["RULES", "cut", "jump", "persistence_pairs", "persistence_pairs_reference", "threshold"]

_MAX_ROUNDS = 10_000  # contraction rounds (a guard: each round contracts at least one component)


def persistence_pairs(order: Tensor, src: Tensor, dst: Tensor, w: Tensor) -> tuple[Tensor, Tensor, int]:
    """Death height of every vertex and the vertex across the edge where it dies (module docstring).

    Args:
        order: ``[n]`` int64 distinct ranks of the vertices (higher = higher ``phi``; ties broken).
        src, dst: ``[E]`` int64 directed edges, both directions present.
        w: ``[E]`` edge heights, ``w <= min(phi[src], phi[dst])`` (``phi`` the vertex heights).

    Returns:
        ``(death [n], into [n], rounds)``: ``death`` the height at which each vertex stops being the peak
        of its component (``+inf`` for the highest peak of a connected component; ``phi`` itself for a
        vertex that is no peak), ``into`` the row at the far end of the edge where it dies (-1 where it
        never dies): for a vertex that is no peak, the neighbour it climbs to.
    """
    n, dev = order.shape[0], order.device
    rows = torch.arange(n, device=dev)
    by_rank = torch.empty_like(order)
    by_rank[order] = rows  # row of each rank
    death = torch.full((n,), math.inf, dtype=w.dtype, device=dev)
    into = torch.full((n,), -1, dtype=torch.int64, device=dev)
    comp = rows  # (n,) the peak row of each vertex's current component
    a, b = src, dst  # (E,) components at both ends: every vertex is one in the first round
    rounds = 0
    while rounds < _MAX_ROUNDS:
        if rounds:
            a, b = comp[src], comp[dst]
        src, dst, w, a, b = _between(src, dst, w, a, b, order, coarsen=rounds > 0)
        if src.numel() == 0:
            break
        rounds += 1
        best_w = torch.full((n,), -math.inf, dtype=w.dtype, device=dev).scatter_reduce(0, a, w, "amax")
        a_at, b_at, d_at = _take(w == best_w[a], a, b, dst)  # (E',) edges at their component's highest
        best_t = torch.full((n,), -1, dtype=torch.int64, device=dev)
        best_t = best_t.scatter_reduce(0, a_at, order[b_at], "amax")  # (n,) rank of the peak across
        a_at, d_at = _take(order[b_at] == best_t[a_at], a_at, d_at)  # (E'',) ... toward the highest peak
        far = torch.full((n,), -1, dtype=torch.int64, device=dev)
        far = far.scatter_reduce(0, a_at, order[d_at], "amax")  # (n,) rank of the end across
        dies = best_t > order  # (n,) a component whose highest edge leads to a higher peak dies there
        death = torch.where(dies, best_w, death)
        into = torch.where(dies, by_rank[far.clamp_min(0)], into)
        g = torch.where(dies, by_rank[best_t.clamp_min(0)], rows)  # (n,) dying peaks -> the peak across
        comp = jump(g)[comp]
    return death, into, rounds


def _between(
    src: Tensor, dst: Tensor, w: Tensor, a: Tensor, b: Tensor, order: Tensor, coarsen: bool
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """The edges between two components (``a != b``); with ``coarsen``, only the best edge of each
    ordered pair of components, the highest, then the one reaching the highest vertex (all a round
    looks at: the others can never be chosen, now or once components have merged).

    Shapes:
        src, dst, w, a, b ``[E]`` -> the same, ``[E']``.
    """
    keep = a != b  # edges inside a component never matter again: merged components stay merged
    if coarsen and bool(keep.any()):
        src, dst, w, a, b = _take(keep, src, dst, w, a, b)
        _, pair = torch.unique(a * order.shape[0] + b, return_inverse=True)  # (E,) ordered pair index
        m = int(pair.max()) + 1
        best = torch.full((m,), -math.inf, dtype=w.dtype, device=w.device).scatter_reduce(0, pair, w, "amax")
        top = w == best[pair]
        reach = torch.full((m,), -1, dtype=torch.int64, device=w.device)
        reach = reach.scatter_reduce(0, pair[top], order[dst[top]], "amax")
        keep = top & (order[dst] == reach[pair])
    elif bool(keep.all()):
        return src, dst, w, a, b
    return _take(keep, src, dst, w, a, b)


def _take(mask: Tensor, *columns: Tensor) -> tuple[Tensor, ...]:
    """The entries of every column where ``mask`` holds (one ``nonzero`` for all of them)."""
    sel = mask.nonzero().squeeze(1)
    return tuple(c.index_select(0, sel) for c in columns)


def persistence_pairs_reference(
    order: np.ndarray, src: np.ndarray, dst: np.ndarray, w: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The same as :func:`persistence_pairs` by the sequential union-find (the plain reference, for tests).

    First every vertex whose highest edge (ties: toward the higher vertex) leads to a higher vertex dies
    there into that neighbour (the first round, steepest ascent); then the remaining edges enter by
    decreasing height, and an edge joining two components kills the lower peak (its ``into``: the end of
    that edge on the other side). Ties between edges of equal height may pick another edge than the
    rounds do (never another death height).
    """
    n = order.size
    death = np.full(n, np.inf)
    into = np.full(n, -1, np.int64)
    first = np.lexsort((order[dst], w, src))  # edges by source, then (height, neighbour rank) ascending
    last = np.r_[src[first][1:] != src[first][:-1], True] if src.size else np.zeros(0, bool)
    best = first[last]  # the highest edge of each vertex with edges
    up = order[dst[best]] > order[src[best]]
    v = src[best][up]
    death[v], into[v] = w[best][up], dst[best][up]
    parent = np.where(into >= 0, into, np.arange(n))

    def find(x: int) -> int:
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    for e in np.argsort(-w, kind="stable").tolist():
        ra, rb = find(int(src[e])), find(int(dst[e]))
        if ra == rb:
            continue
        lo, hi, across = (ra, rb, dst[e]) if order[ra] < order[rb] else (rb, ra, src[e])
        death[lo], into[lo] = w[e], across
        parent[lo] = hi  # the root of a component is its peak
    return death, into


def threshold(persistence: Tensor, rule: str, floor: float) -> float:
    """The persistence a peak needs to stand alone, ``tau``.

    Args:
        persistence: ``[m]`` the finite persistences of the peaks (``> 0``; vertices that are no peak and
            the highest peak of each connected component left out).
        rule: ``"fixed"``: ``tau = floor``; ``"gap"``: the values, with 0 (the diagonal of the diagram,
            where the non-peaks lie), sorted; ``tau`` is the middle of the widest gap between two
            consecutive ones (the lowest such gap on ties), but never below ``floor``. With no value,
            ``tau = floor``; with one value ``v``, ``max(floor, v / 2)`` (``v`` stands iff ``v >= floor``);
            with two ``a < b``, ``b`` alone stands when ``b - a > a`` (and ``b >= floor``).
        floor: ``field_persistence``, the least ``tau`` (a log-density ratio: noise bumps never stand).

    Returns:
        ``tau``.
    """
    if rule not in RULES:
        raise ValueError(f"field_persistence_rule = {rule!r} must be one of {RULES}")
    if rule == "fixed" or persistence.numel() == 0:
        return float(floor)
    v = torch.cat([persistence.new_zeros(1), persistence.flatten()]).double().sort().values  # (m + 1,)
    gaps = v[1:] - v[:-1]
    i = int(torch.argmax(gaps))  # the first of the widest
    return max(float(floor), float(v[i] + v[i + 1]) / 2)


def cut(death: Tensor, into: Tensor, phi: Tensor, tau: float, min_size: int = 1) -> Tensor:
    """The root peak of every vertex once the peaks below persistence ``tau`` have merged.

    A vertex stands as a root when it never dies (the top of a connected component) or when it is a
    peak (persistence ``> 0``) of persistence at least ``tau``; every other vertex joins the root of the
    vertex it dies into (``into``). Then a root holding fewer than ``min_size`` vertices that does die
    somewhere stops standing and joins the root of its ``into`` as well (a group too small to be a field
    is part of the group it meets first, not left out), until every such root is large enough; only the
    tops of connected components smaller than ``min_size`` stay small.

    Shapes:
        death, into, phi ``[n]`` -> ``[n]`` int64 rows.
    """
    n = phi.shape[0]
    rows = torch.arange(n, device=phi.device)
    pers = phi.to(death.dtype) - death
    stands = (into < 0) | ((pers > 0) & (pers >= tau))
    while True:
        root = jump(torch.where(stands, rows, into))
        size = torch.bincount(root, minlength=n)  # (n,) members of each root
        small = stands & (size < min_size) & (into >= 0)
        if not bool(small.any()):
            return root
        stands &= ~small


def jump(g: Tensor) -> Tensor:
    """Follow pointers to their roots (``g[root] == root``) by pointer jumping (``g <- g[g]``).

    Raises:
        RuntimeError: the pointers hold a cycle (each jump doubles the length followed, so acyclic
            pointers settle within 64 jumps).
    """
    for _ in range(64):
        nxt = g[g]
        if torch.equal(nxt, g):
            return g
        g = nxt
    raise RuntimeError("pointer cycle in the persistence forest")
