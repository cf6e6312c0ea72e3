"""Spreading activation over learned edges.

A signal activates its result token with energy 1. Energy flows along learned edges, losing a fraction
at each hop (DESIGN §3.5)::

    E' = E * w * (1 - decay)

for at most ``depth`` hops; a token is *reached* when the energy arriving there is at least
``threshold``, and it keeps the largest energy that reached it (max-product paths). The result is, per
signal, the reached tokens (the start excluded) and their energies. Many signals spread at once as
independent rows: the frontier is a flat list of ``(row, token, energy)`` triples, expanded through the
padded adjacency table ``adj [C, D]`` by gathers, so a batch costs a few array operations per hop.

Three implementations with one contract: :func:`spread_torch` (tensors on the engine's device, the
batch path on every device: one host sync per hop), :func:`spread_numpy` (host arrays, its reference)
and :func:`spread_one` (one start, Python dicts: the single-signal path on the CPU). Tests check they
agree.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from neurograph.emit.hebbian import positions, sort_groups, take_rows

__all__ = ["spread_numpy", "spread_one", "spread_torch"]


def spread_numpy(
    starts: np.ndarray,
    adj: np.ndarray,
    nbr: np.ndarray,
    weight: np.ndarray,
    decay: float,
    depth: int,
    threshold: float,
    max_weight: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Spread from ``starts`` (one row each) over the adjacency tables.

    Args:
        starts: ``[R]`` start token slots.
        adj: ``[C, D]`` edge slots per token (-1 empty); a pair of tokens shares at most one learned edge.
        nbr: ``[C, D]`` the token at the other end of each of those edges.
        weight: ``[Ec]`` edge weights.
        decay: energy lost per hop.
        depth: maximal hops.
        threshold: smallest energy that reaches a token.
        max_weight: an upper bound of the weights; tokens whose energy cannot reach anyone through an
            edge of this weight are not expanded.

    Returns:
        ``(rows [M], nodes [M], energy [M])``: every reached ``(row, token)`` once, start excluded, in
        order of first arrival.
    """
    keep_frac = 1.0 - decay
    n_rows = starts.shape[0]
    starts = starts.astype(np.int64)
    stride = np.int64(adj.shape[0])
    rows = np.arange(n_rows, dtype=np.int64)
    nodes = starts
    energy = np.ones(n_rows)
    reached = pd.Index(np.zeros(0, np.int64))  # keys row * stride + token reached so far (a hash index)
    reached_energy = np.zeros(0)
    for hop in range(depth):
        grow = energy * max_weight * keep_frac >= threshold  # only tokens that can still reach someone
        rows, nodes, energy = rows[grow], nodes[grow], energy[grow]
        if rows.size == 0:
            break
        e = adj[nodes]  # (F, D)
        w = np.where(e >= 0, weight[np.maximum(e, 0)], 0.0)  # (F, D)
        new_e = (energy * keep_frac)[:, None] * w  # (F, D)
        other = nbr[nodes].astype(np.int64)  # (F, D)
        f_idx, col = np.nonzero((new_e >= threshold) & (other != starts[rows][:, None]))
        if f_idx.size == 0:
            break
        key = rows[f_idx] * stride + other[f_idx, col]
        new_e = new_e[f_idx, col]
        if hop > 0:  # several paths may arrive at one token: keep the strongest (hash group-by, no sort)
            codes, uniq = pd.factorize(key)
            top = np.full(uniq.size, -np.inf)
            np.maximum.at(top, codes, new_e)
            key, new_e = np.asarray(uniq, np.int64), top
        # (first hop: one edge per pair, so arrivals are already distinct)
        if len(reached):
            pos = reached.get_indexer(key)
            seen = pos >= 0
            improves = ~seen | (new_e > reached_energy[np.maximum(pos, 0)])
            upd = seen & improves
            reached_energy[pos[upd]] = new_e[upd]
            reached = reached.append(pd.Index(key[~seen]))
            reached_energy = np.concatenate([reached_energy, new_e[~seen]])
            key, new_e = key[improves], new_e[improves]
        else:
            reached, reached_energy = pd.Index(key), new_e.copy()
        rows, nodes, energy = key // stride, key % stride, new_e
    keys = np.asarray(reached, np.int64)
    return keys // stride, keys % stride, reached_energy


def spread_one(
    start: int,
    adj: np.ndarray,
    nbr: np.ndarray,
    weight: np.ndarray,
    decay: float,
    depth: int,
    threshold: float,
    max_weight: float = 1.0,
) -> tuple[list[int], list[float]]:
    """:func:`spread_numpy` for a single start token, with Python dicts instead of hash indexes.

    A signal reaches few tokens, so the frontier is walked token by token over its adjacency row (as
    Python lists), with the arithmetic of :func:`spread_numpy` in the same order (same float64 bits).

    Returns:
        ``(nodes, energy)``: the reached tokens in order of first arrival (the start excluded) and the
        energy that reached each, exactly as row 0 of :func:`spread_numpy`.
    """
    keep_frac = 1.0 - decay
    best: dict[int, float] = {}
    frontier: list[tuple[int, float]] = [(start, 1.0)]
    for hop in range(depth):
        arrivals: dict[int, float] = {}  # in order of first arrival: frontier order, then column order
        for node, en in frontier:
            if not en * max_weight * keep_frac >= threshold:  # it cannot reach anyone any more
                continue
            row = adj[node]  # (D,) edge slots, -1 empty
            slots = row.tolist()
            if max(slots) < 0:
                continue
            passed = en * keep_frac
            for e, v, w in zip(slots, nbr[node].tolist(), weight[row].tolist()):
                if e >= 0:
                    en_v = passed * w
                    # first hop: one edge per pair, so arrivals are distinct; later: keep the strongest
                    if en_v >= threshold and v != start and (hop == 0 or en_v > arrivals.get(v, -1.0)):
                        arrivals[v] = en_v
        frontier = []
        for v, en_v in arrivals.items():
            old = best.get(v)
            if old is None or en_v > old:
                best[v] = en_v
                frontier.append((v, en_v))
        if not frontier:
            break
    return list(best), list(best.values())


def spread_torch(
    starts: torch.Tensor,
    adj: torch.Tensor,
    nbr: torch.Tensor,
    weight: torch.Tensor,
    decay: float,
    depth: int,
    threshold: float,
    max_weight: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Tensor twin of :func:`spread_numpy`: same arguments as tensors on one device, same answer in the
    same order (every reached ``(row, token)`` once, in order of first arrival).

    Each hop is fixed-shape work over the frontier's ``[F, D]`` expansion (a stable sort groups repeated
    arrivals, keeping the strongest and the first position; a searchsorted over the reached keys tells
    new from improved ones) followed by **one host sync**: the number of new arrivals and of tokens that
    go on spreading, to size the next frontier. A hop whose frontier is empty is not run.
    """
    device = starts.device
    keep_frac = 1.0 - decay
    f64 = torch.float64
    starts = starts.long()
    stride = adj.shape[0]
    rows = torch.arange(starts.shape[0], device=device)
    nodes = starts
    energy = torch.ones(starts.shape[0], device=device, dtype=f64)
    arrived = torch.zeros(0, dtype=torch.long, device=device)  # reached keys, in order of first arrival
    arrived_energy = torch.zeros(0, dtype=f64, device=device)
    reached = arrived  # the same keys sorted, for lookups ...
    where_arrived = arrived  # ... and the position of each in ``arrived``
    for hop in range(depth):
        if rows.numel() == 0:
            break
        grow = energy * max_weight * keep_frac >= threshold  # only tokens that can still reach someone
        e = take_rows(adj, nodes)  # (F, D) edge slots, -1 empty
        w = take_rows(weight, e.clamp_min(0)).to(f64) * (e >= 0)  # (F, D), 0 for empty entries
        new_e = ((energy * keep_frac)[:, None] * w).reshape(-1)  # (F*D,) in arrival order
        other = take_rows(nbr, nodes)  # (F, D)
        hit = grow[:, None] & (other != take_rows(starts, rows)[:, None].to(other.dtype))  # (F, D)
        hit = hit.reshape(-1) & (new_e >= threshold)  # (F*D,)
        key = torch.where(hit, (rows[:, None] * stride + other).reshape(-1), _NO_KEY)  # (F*D,)
        if hop > 0:  # several paths may arrive at one token: keep the strongest, at its first arrival
            key, new_e = _strongest_first(key, new_e)
        lead = key != _NO_KEY
        # reached before? (sorted keys; the sentinel never matches)
        m = reached.numel()
        if m:
            pos = torch.searchsorted(reached, key).clamp(max=m - 1)
            seen = lead & (take_rows(reached, pos) == key)
            at = take_rows(where_arrived, pos)  # (F*D,) position in ``arrived`` where seen
            improves = lead & (~seen | (new_e > take_rows(arrived_energy, at)))
            upd = seen & improves
            arrived_energy = _set_where(arrived_energy, at, new_e, upd)
        else:
            seen = torch.zeros_like(lead)
            improves = lead
        fresh = lead & ~seen
        go_on = improves & (new_e * max_weight * keep_frac >= threshold)
        n_fresh, n_go = (int(v) for v in torch.stack([fresh.sum(), go_on.sum()]).tolist())  # host sync
        pick = positions(fresh, n_fresh)  # (n_fresh,)
        arrived = torch.cat([arrived, take_rows(key, pick)])
        arrived_energy = torch.cat([arrived_energy, take_rows(new_e, pick)])
        if hop + 1 == depth or n_go == 0:
            break
        reached, where_arrived = torch.sort(arrived)
        pick = positions(go_on, n_go)  # (n_go,)
        key_go = take_rows(key, pick)
        rows, nodes, energy = key_go // stride, key_go % stride, take_rows(new_e, pick)
    return arrived // stride, arrived % stride, arrived_energy


_NO_KEY = torch.iinfo(torch.int64).max


def _strongest_first(key: torch.Tensor, energy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep one entry per key: at its first position, with the largest energy of its repeats.

    Shapes:
        key, energy ``[n]`` -> ``[n]`` (dropped entries get the sentinel key).
    """
    n = key.shape[0]
    order, start, group = sort_groups(key, stable=True)
    top = torch.full((n,), -torch.inf, dtype=energy.dtype, device=key.device)
    top = top.scatter_reduce(0, group, energy, "amax")
    first = torch.zeros(n, dtype=torch.bool, device=key.device).scatter_(0, order, start)  # first of each
    return torch.where(first, key, _NO_KEY), take_rows(top, group)


def _set_where(values: torch.Tensor, at: torch.Tensor, new: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``values[at[mask]] = new[mask]`` without a host sync (``at`` distinct where ``mask``)."""
    m = values.shape[0]
    out = torch.cat([values, values.new_zeros(1)])  # a spare slot for the unmasked entries
    out.scatter_(0, torch.where(mask, at, m), torch.where(mask, new, 0.0))
    return out[:m]
