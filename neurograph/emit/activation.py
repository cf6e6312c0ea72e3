"""Spreading activation over learned edges.

A signal activates its result token with energy 1. Energy flows along learned edges, losing a fraction
at each hop (DESIGN §3.5)::

    E' = E * w * (1 - decay)

for at most ``depth`` hops; a token is *reached* when the energy arriving there is at least
``threshold``, and it keeps the largest energy that reached it (max-product paths). The result is, per
signal, the reached tokens (the start excluded) and their energies. Many signals spread at once as
independent rows: the frontier is a flat list of ``(row, token, energy)`` triples, expanded through the
padded adjacency table ``adj [C, D]`` by gathers, so a batch costs a few array operations per hop.

Two implementations with one contract: :func:`spread_numpy` (host, used on CPU where it is cheapest for
single signals) and :func:`spread_torch` (device tensors, used on CUDA). Tests check they agree.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

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

    Returns:
        ``(nodes, energy)``: the reached tokens in order of first arrival (the start excluded) and the
        energy that reached each, exactly as row 0 of :func:`spread_numpy`.
    """
    keep_frac = 1.0 - decay
    best: dict[int, float] = {}
    nodes = np.array([start], np.int64)
    energy = np.ones(1)
    for hop in range(depth):
        grow = energy * max_weight * keep_frac >= threshold
        nodes, energy = nodes[grow], energy[grow]
        if nodes.size == 0:
            break
        e = adj[nodes]  # (F, D)
        w = np.where(e >= 0, weight[np.maximum(e, 0)], 0.0)  # (F, D)
        new_e = (energy * keep_frac)[:, None] * w  # (F, D)
        other = nbr[nodes]  # (F, D)
        f_idx, col = np.nonzero((new_e >= threshold) & (other != start))
        if f_idx.size == 0:
            break
        arrivals: dict[int, float] = {}
        for v, en in zip(other[f_idx, col].tolist(), new_e[f_idx, col].tolist()):
            if hop == 0 or en > arrivals.get(v, -1.0):  # first hop: arrivals are distinct
                arrivals[v] = en
        grown_nodes, grown_energy = [], []
        for v, en in arrivals.items():
            old = best.get(v)
            if old is None or en > old:
                best[v] = en
                grown_nodes.append(v)
                grown_energy.append(en)
        nodes = np.array(grown_nodes, np.int64)
        energy = np.array(grown_energy)
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
    """Tensor twin of :func:`spread_numpy` (same arguments as tensors on one device, same reached set).

    Rows come back sorted by ``(row, token)`` instead of in order of first arrival.
    """
    device = starts.device
    keep_frac = 1.0 - decay
    starts = starts.long()
    stride = adj.shape[0]
    rows = torch.arange(starts.shape[0], device=device)
    nodes = starts
    energy = torch.ones(starts.shape[0], device=device, dtype=torch.float64)
    reached = torch.zeros(0, dtype=torch.long, device=device)  # sorted keys
    reached_energy = torch.zeros(0, dtype=torch.float64, device=device)
    w64 = weight.double()
    for _ in range(depth):
        grow = energy * max_weight * keep_frac >= threshold
        rows, nodes, energy = rows[grow], nodes[grow], energy[grow]
        if rows.numel() == 0:
            break
        e = adj[nodes].long()  # (F, D)
        w = torch.where(e >= 0, w64[e.clamp_min(0)], torch.zeros((), dtype=torch.float64, device=device))
        new_e = (energy * keep_frac)[:, None] * w  # (F, D)
        other = nbr[nodes].long()  # (F, D)
        f_idx, col = torch.nonzero((new_e >= threshold) & (other != starts[rows][:, None]), as_tuple=True)
        if f_idx.numel() == 0:
            break
        key = rows[f_idx] * stride + other[f_idx, col]
        uniq, inv = torch.unique(key, return_inverse=True)  # sorted
        top = torch.full((uniq.numel(),), -1.0, device=device, dtype=torch.float64)
        top = top.scatter_reduce(0, inv, new_e[f_idx, col], reduce="amax")
        key, new_e = uniq, top
        pos = torch.searchsorted(reached, key)
        pos_c = pos.clamp(max=max(reached.numel() - 1, 0))
        seen = (
            (pos < reached.numel()) & (reached[pos_c] == key)
            if reached.numel()
            else torch.zeros_like(key, dtype=torch.bool)
        )
        improves = ~seen | (new_e > (reached_energy[pos_c] if reached.numel() else new_e))
        upd = seen & improves
        reached_energy[pos_c[upd]] = new_e[upd]
        merged = torch.cat([reached, key[~seen]])
        order = torch.argsort(merged, stable=True)
        reached = merged[order]
        reached_energy = torch.cat([reached_energy, new_e[~seen]])[order]
        rows, nodes, energy = key[improves] // stride, key[improves] % stride, new_e[improves]
    return reached // stride, reached % stride, reached_energy
