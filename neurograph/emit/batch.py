"""One batch of validated signals through the engine's state: plan everything, check quotas, apply.

This is the body of ``Engine.emit`` / ``Engine.emit_batch`` (DESIGN §3), kept apart from the engine's
bookkeeping so that it reads top to bottom:

1. neighbours of every row among the resident tokens (one exact kNN query);
2. novelty, result tokens and in-batch neighbours with sequential semantics (:mod:`neurograph.emit.novelty`);
3. co-activated pairs -> planned reinforcements and new hypothesis edges (:mod:`neurograph.emit.hebbian`);
4. the Guardian checks the planned growth against the quotas; *nothing has changed yet*;
5. apply: insert the new tokens and edges, reinforce edges, move and grow the resonating tokens (their
   updates land after the batch, composed exactly as sequential updates would be);
6. spreading activation from each row's result token (:mod:`neurograph.emit.activation`);
7. per-row results: ids, neighbours, resonance, anomaly, energy change.

``energy_delta`` of a row is the change of the pair energies (springs along existing edges, soft-sphere
repulsion, field wells; :mod:`neurograph.fields.energy`) between the row's result token and its other
neighbours, from the state before the batch to the state after it (0 before, for a novel token).

**The batch stays on the device** (DESIGN §3.8). The host arrays the engine hands over are copied to the
engine's device once, asynchronously (numpy appears otherwise only in host bookkeeping: the id map, the
CPU tree index). After the kNN every step is tensor work there, shaped by counts read at the sync points
below: the co-activated pairs are the row-major entries of the ``[B, w]`` neighbour table (``w <= k``:
the widest row), compacted by a scan; deduplication and ranks are sorts and scans, per-token updates are
scatters, and the resonating tokens' new values are written by every row that shares them (identical
values, so no compaction). New tokens and edges are written straight into the stores' tensors
(``TensorStore.append_rows``, then ``TokenState.map_new`` for the id map), since the stores' own
``append`` takes host values. On the CPU the same code runs on CPU tensors, and the tree index keeps its
host-side bookkeeping of inserted and moved tokens (views, no copies).

Host syncs (each one ``.tolist()`` of a few counts; on CUDA a wait for the queued work):

1. novelty (:mod:`neurograph.emit.novelty`): the numbers of undecided and of novel rows, of columns of
   the widest neighbour row and of co-activated pairs, once per
   :data:`~neurograph.emit.novelty.ROUNDS` resolution rounds, which usual batches need once. Dense
   clumps of novel signals whose conflict lists overflow add one per exact round, plus one. The counts
   size everything after, the new tokens' allocation included;
2. growth: the numbers of admitted new edges and of reinforced edges, for their allocation and for the
   Guardian's quota check before anything changes, and the widest adjacency row after them (spreading
   activation reads no further);
3. activation (:func:`~neurograph.emit.activation.spread_torch`): one per hop of spreading activation
   that has a frontier (at most ``activation_depth``; usually one): the numbers of new arrivals and of
   tokens that spread on.

The kNN backend may sync on its own (the fused Triton kernel does not). The result stays on the device
(``BatchResult.device_tensors``); reading its attributes copies it to the host once: the API edge.
``tests/emit/test_batch_device.py`` counts the syncs of a batch on CUDA.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from neurograph.cdna import CDNA
from neurograph.emit.activation import spread_torch
from neurograph.emit.energy import ordered_sum, row_pair_energy
from neurograph.emit.hebbian import (
    cumcount_tensor,
    hebbian_success,
    plan_edges,
    positions,
    sort_groups,
    take_rows,
)
from neurograph.emit.novelty import resolve_batch
from neurograph.emit.results import BatchResult
from neurograph.guardian import Guardian
from neurograph.kinds import ASSOCIATED_WITH, HYPOTHESIS, LEARNABLE, TRIGGER_KINDS
from neurograph.neighbors import NeighborIndex
from neurograph.state import EdgeState, TokenState

__all__ = ["EmitState", "ingest_batch"]

F64 = torch.float64


@dataclass
class EmitState:
    """What a signal changes (tokens, edges, the neighbour index) and the Guardian that checks it first.

    The engine builds one at construction and hands it to :func:`ingest_batch` and
    :func:`~neurograph.emit.single.ingest_one` (was ``Stores``, a name that read like the persistent store).
    """

    tokens: TokenState
    edges: EdgeState
    index: NeighborIndex
    guardian: Guardian


def ingest_batch(
    st: EmitState, cdna: CDNA, x: np.ndarray, priority: np.ndarray, kind: np.ndarray, tick0: int
) -> BatchResult:
    """Run validated signals through the state (see the module docstring).

    Args:
        st: tokens, edges, index, guardian.
        cdna: the constitution in force.
        x: ``[B, 8]`` float32 positions, already clamped into the box.
        priority: ``[B]`` int64 in 0..255.
        kind: ``[B]`` entity kind code of the token a novel row creates.
        tick0: engine tick of the first row (row ``i`` happens at ``tick0 + i``).

    Returns:
        The :class:`BatchResult`, its tensors on the engine's device (``processing_time_us`` is filled by
        the caller).
    """
    return _ingest(st, cdna, x, priority, kind, tick0)


def _ingest(
    st: EmitState, cdna: CDNA, x: np.ndarray, priority: np.ndarray, kind: np.ndarray, tick0: int
) -> BatchResult:
    tokens, edges, index = st.tokens, st.edges, st.index
    dev = tokens.pos.device
    b = x.shape[0]
    k, radius = cdna.max_neighbors, cdna.neighbor_radius
    # the API edge: host arrays -> device, once
    xt = _to_device(x, np.float32, dev)  # (B, 8)
    pri = _to_device(priority, np.int64, dev)  # (B,)
    kinds = _to_device(kind, np.int16, dev)  # (B,)
    ticks = tick0 + torch.arange(b, device=dev)  # (B,) tick of each row

    # 1-2. neighbours and novelty (sequential semantics; sync 1)
    res_slots, res_dist = index.knn_tensors(xt, k, radius)  # (B, k)
    first_new = tokens.count
    nov = resolve_batch(index, xt, res_slots, res_dist, cdna.novelty_threshold, radius, first_new)
    slots, novel, n_new, w = nov.slot, nov.is_novel, nov.n_new, nov.width
    nbr, nd = nov.nbr_slots[:, :w], nov.nbr_dist[:, :w]  # (B, w): the columns some row fills
    valid = nbr >= 0  # (B, w)
    resonance = torch.exp(-nd / radius)  # (B, w) float64; 0 where padded (inf)

    # 3. co-activated pairs, in signal order: the row-major entries of the (B, w) table that are pairs
    pair_mask = valid & (nbr != slots[:, None])  # (B, w)
    at = positions(pair_mask.reshape(-1), nov.n_pairs)  # (P,)
    pa = take_rows(slots, at // max(w, 1))  # (P,) the row's token
    pb = take_rows(nbr.reshape(-1), at)  # (P,) the neighbour
    existed = (pa < first_new) & (pb < first_new)  # (P,) both tokens existed before the batch
    old_slot = slots < first_new  # (B,) the row's token existed before the batch
    old_row = old_slot[:, None] & valid & (nbr < first_new)  # (B, w)
    existing = take_rows(_existing_edges(edges, slots, nbr, pair_mask & old_row).reshape(-1), at)  # (P,)
    plan = plan_edges(
        pa,
        pb,
        None,
        take_rows(resonance.reshape(-1), at),
        existing,
        torch.stack([_degree(edges, pa, first_new), _degree(edges, pb, first_new)], 1),  # (P, 2)
        cdna,
    )
    # the "before" state for energy deltas (pairs of tokens that existed; novel tokens did not)
    pairs = (at, w)
    safe_slots, safe_pb = torch.where(old_slot, slots, 0), torch.where(existed, pb, 0)
    before = row_pair_energy(tokens, edges, cdna, safe_slots, safe_pb, existing, existed, pairs)

    # 4. quotas, before anything grows (sync 2)
    counts = [plan.new_mask.sum(), plan.upd_mask.sum(), _widest_after(edges, plan, first_new + n_new)]
    n_edges_new, n_upd, width = (int(v) for v in torch.stack(counts).tolist())
    st.guardian.check_growth(cdna, tokens, edges, new_tokens=n_new, new_edges=n_edges_new)

    # 5. apply: new tokens ...
    tick_last = tick0 + b - 1
    if n_new:
        _append_tokens(tokens, cdna, nov.new_rows, xt, pri, kinds, ticks)
        index.add(np.arange(first_new, first_new + n_new))
    edges.ensure_nodes(tokens.capacity, cdna.max_degree)
    # ... new edges and reinforced edges ...
    first_new_edge = edges.count
    if n_edges_new:
        _append_edges(edges, cdna, plan, n_edges_new, tick_last)
    if n_upd:
        _reinforce(edges, cdna, plan, n_upd, tick_last)
    # ... resonating tokens move toward their signals and gain mass (sequential composition)
    _resonate(st, cdna, slots, ~novel, xt, pri, ticks)

    # 6. spreading activation (sync 3: one per hop)
    spread_rows, spread_nodes, spread_energy = spread_torch(
        slots,
        edges.adj[:, :width],  # rows are packed: no edge lies past the widest row
        edges.nbr[:, :width],
        edges.weight,
        cdna.activation_decay,
        cdna.activation_depth,
        cdna.activation_threshold,
        cdna.weight_max,
    )
    activation_spread = torch.zeros(b, dtype=torch.int64, device=dev)
    activation_spread.index_add_(0, spread_rows, torch.ones_like(spread_rows))
    tokens.activation.scatter_reduce_(0, spread_nodes, spread_energy.to(torch.float32), "amax")
    tokens.activation.index_fill_(0, slots, 1.0)
    trig_ids, trig_off = _triggered(tokens, slots, spread_rows, spread_nodes)

    # 7. results
    after = row_pair_energy(tokens, edges, cdna, slots, pb, plan.edges_after(first_new_edge), None, pairs)
    energy = after - before
    n_valid = valid.sum(1)
    dist_sum = ordered_sum(_widen(torch.where(valid, nd, 0.0), k, 0.0))  # (B,) as numpy sums k columns
    anomaly = torch.where(n_valid == 0, 1.0, torch.clamp(dist_sum / n_valid.clamp_min(1) / radius, max=1.0))
    safe = nbr.clamp_min(0)
    return BatchResult(
        token_ids=take_rows(tokens.ids, slots),
        is_novel=novel,
        neighbor_ids=_widen(torch.where(valid, take_rows(tokens.ids, safe), -1), k, -1),
        neighbor_distances=_widen(nd.to(torch.float32), k, torch.inf),
        neighbor_resonance=_widen(resonance.to(torch.float32), k, 0.0),
        anomaly_scores=anomaly.to(torch.float32),
        energy_deltas=energy.to(torch.float32),
        activation_spread=activation_spread,
        triggered_ids=trig_ids,
        triggered_offsets=trig_off,
        neighbor_kinds=_widen(torch.where(valid, take_rows(tokens.kind, safe), 0), k, 0),
        neighbor_affinity=_widen(take_rows(tokens.pos, safe).abs().argmax(-1), k, 0),
    )


def _widen(t: torch.Tensor, k: int, fill: float) -> torch.Tensor:
    """Pad ``t [B, w]`` with ``fill`` to ``[B, k]``."""
    if t.shape[1] == k:
        return t
    return torch.cat([t, t.new_full((t.shape[0], k - t.shape[1]), fill)], 1)


def _to_device(a: np.ndarray, dtype: Any, dev: torch.device) -> torch.Tensor:
    """A host array as a tensor on ``dev`` (a view on the CPU; an asynchronous copy elsewhere)."""
    t = torch.from_numpy(np.ascontiguousarray(a, dtype=dtype))
    return t if dev.type == "cpu" else t.to(dev, non_blocking=True)


def _existing_edges(
    edges: EdgeState, slots: torch.Tensor, nbr: torch.Tensor, ask: torch.Tensor
) -> torch.Tensor:
    """Slot of the learned edge joining ``slots[i]`` and ``nbr[i, j]`` where ``ask``, else -1.

    Looks in the adjacency row of each row's token (a pair shares at most one learned edge).

    Shapes:
        slots ``[B]``, nbr ``[B, k]``, ask ``[B, k]`` -> ``[B, k]`` int64.
    """
    if edges.n_alive == 0:
        return torch.full_like(nbr, -1)
    a = slots.clamp(0, edges.nbr.shape[0] - 1)
    table, order = torch.sort(take_rows(edges.nbr, a), dim=1)  # (B, D) each row's other endpoints, sorted
    b32 = nbr.to(table.dtype)
    col = torch.searchsorted(table, b32).clamp(max=table.shape[1] - 1)  # (B, k)
    found = ask & (table.gather(1, col) == b32)
    return torch.where(found, take_rows(edges.adj, a).gather(1, order.gather(1, col)).long(), -1)


def _degree(edges: EdgeState, s: torch.Tensor, first_new: int) -> torch.Tensor:
    """Current learned degree of each token slot (0 for tokens of this batch). Shapes: ``[P] -> [P]``."""
    table = edges.degree
    rows = table.shape[0]
    known = (s < first_new) & (s < rows)
    return torch.where(known, take_rows(table, s.clamp(0, rows - 1)).long(), 0)


def _widest_after(edges: EdgeState, plan: Any, tokens_after: int) -> torch.Tensor:
    """The largest learned degree of a token once the plan's new edges are in (a 0-d tensor): adjacency
    rows are packed, so spreading activation need not look past this column."""
    rows = max(edges.degree.shape[0], tokens_after)
    degree = torch.zeros(rows + 1, dtype=torch.int64, device=edges.device)  # a spare slot for the refused
    degree[: edges.degree.shape[0]] = edges.degree
    for end in (plan.new_src, plan.new_dst):
        degree.index_add_(0, torch.where(plan.new_mask, end, rows), torch.ones_like(end))
    return degree[:rows].max()


def _append_tokens(
    tokens: TokenState,
    cdna: CDNA,
    rows: torch.Tensor,
    x: torch.Tensor,
    pri: torch.Tensor,
    kinds: torch.Tensor,
    ticks: torch.Tensor,
) -> None:
    """Insert a token for each novel row (what ``TokenState.append`` does, from device tensors)."""
    n = rows.shape[0]
    mass = cdna.token_mass(pri[rows].to(F64))
    next_id = tokens.next_id
    start = tokens.append_rows(
        n,
        {
            "pos": x[rows],
            "vel": 0.0,
            "mass": mass.to(torch.float32),
            "radius": cdna.token_radius,
            "strength": cdna.token_strength,
            "kind": kinds[rows],
            "level": 0,
            "parent": -1,
            "activation": 0.0,
            "hits": 1,
            "born": ticks[rows],
            "seen": ticks[rows],
            "ids": torch.arange(next_id, next_id + n, device=x.device),
            "alive": True,
        },
    )
    tokens.map_new(start, n)  # the host-side id map and counters, as TokenState.append keeps them


def _append_edges(edges: EdgeState, cdna: CDNA, plan: Any, n: int, tick: int) -> None:
    """Append the ``n`` admitted new hypothesis edges of ``plan``, in proposal order, and enter them in
    the adjacency rows of both endpoints (what ``EdgeState.append`` does, from device tensors)."""
    which = positions(plan.new_mask, n)

    def admitted(t: torch.Tensor) -> torch.Tensor:
        return take_rows(t, which)  # (n,) in proposal order

    src, dst, cnt = admitted(plan.new_src), admitted(plan.new_dst), admitted(plan.new_count)
    confidence = torch.clamp(cdna.confidence_init + (cnt - 1).to(F64) * cdna.learning_rate, max=1.0)
    start = edges.append_rows(
        n,
        {
            "src": src,
            "dst": dst,
            "kind": ASSOCIATED_WITH,
            "weight": admitted(plan.new_weight).to(torch.float32),
            "rest": cdna.rest_length,
            "confidence": confidence.to(torch.float32),
            "mutability": torch.where(cnt >= cdna.promotion_evidence, LEARNABLE, HYPOTHESIS),
            "evidence": cnt,
            "alive": True,
            "updated": tick,
        },
    )
    edges.n_alive += n
    # adjacency: both endpoints, sources first, each entering its row after the entries already there
    nodes = torch.cat([src, dst])  # (2n,)
    eslots = torch.arange(start, start + n, device=src.device).repeat(2)  # (2n,)
    cell = nodes * edges.adj.shape[1] + take_rows(edges.degree, nodes).long() + cumcount_tensor(nodes)
    edges.adj.view(-1).index_copy_(0, cell, eslots.to(torch.int32))  # (C * D,) row-major cells
    edges.nbr.view(-1).index_copy_(0, cell, torch.cat([dst, src]).to(torch.int32))
    edges.degree.index_add_(0, nodes, torch.ones_like(nodes, dtype=torch.int32))


def _reinforce(edges: EdgeState, cdna: CDNA, plan: Any, n: int, tick: int) -> None:
    """Apply the planned co-activations to the ``n`` existing edges (:func:`hebbian_success`)."""
    which = positions(plan.upd_mask, n)
    e = take_rows(plan.upd_edge, which)  # (n,) distinct edge slots
    conf, w, ev, mut = hebbian_success(
        take_rows(edges.confidence, e).to(F64),
        take_rows(edges.weight, e).to(F64),
        take_rows(edges.evidence, e),
        take_rows(edges.mutability, e),
        take_rows(plan.upd_count, which),
        take_rows(plan.upd_res, which),
        cdna,
    )
    edges.confidence.index_copy_(0, e, conf.to(torch.float32))
    edges.weight.index_copy_(0, e, w.to(torch.float32))
    edges.evidence.index_copy_(0, e, ev.to(torch.int32))
    edges.mutability.index_copy_(0, e, mut.to(torch.int8))
    edges.updated.index_fill_(0, e, tick)


def _resonate(
    st: EmitState,
    cdna: CDNA,
    slots: torch.Tensor,
    fam: torch.Tensor,
    x: torch.Tensor,
    pri: torch.Tensor,
    ticks: torch.Tensor,
) -> None:
    """Move each resonating token toward its signals and grow its mass, as ``m`` sequential updates would.

    ``pos <- pos + lr (v - pos)`` applied for signals ``v_1..v_m`` in order equals
    ``(1 - lr)^m pos + sum_i lr (1 - lr)^(m - i) v_i``. Every row writes its token's final values
    (identical for the rows sharing a token; unchanged for a new token no later row resonated with), so
    the writes need no compaction.

    Shapes:
        slots, fam (the familiar rows), pri, ticks ``[B]``; x ``[B, 8]``.
    """
    tokens = st.tokens
    b = slots.shape[0]
    lr = cdna.learning_rate
    idx = torch.arange(b, device=slots.device)
    order, start, group = sort_groups(slots, stable=True)  # group: rows sharing a token
    famc = fam.long()
    m = take_rows(torch.zeros(b, dtype=torch.int64, device=slots.device).scatter_add_(0, group, famc), group)
    # rank of each familiar signal among its token's, in row order
    fam_sorted = take_rows(famc, order)
    before = torch.cumsum(fam_sorted, 0) - fam_sorted  # (B,) familiar rows before, in sorted order
    first = torch.cummax(torch.where(start, idx, 0), 0).values  # (B,) sorted position of each run
    rank = torch.empty_like(order).scatter_(0, order, before - take_rows(before, first))
    w = torch.where(fam, lr * torch.pow(1.0 - lr, (m - 1 - rank).to(F64)), 0.0)  # weight in the closed form
    acc = torch.zeros(b, x.shape[1], dtype=F64, device=slots.device)
    acc.index_add_(0, group, w[:, None] * x.to(F64))  # (B, 8) per group
    pos = take_rows(tokens.pos, slots).to(F64)  # (B, 8)
    moved = torch.pow(1.0 - lr, m.to(F64))[:, None] * pos + acc[group]
    moved = torch.stack(
        [moved[:, i].clamp(cdna.axis_min[i], cdna.axis_max[i]) for i in range(moved.shape[1])], 1
    )  # (B, 8) kept in the box
    gain = torch.where(fam, cdna.resonance_gain(pri.to(F64)), 0.0)
    gain = torch.zeros(b, dtype=F64, device=slots.device).scatter_add_(0, group, gain)[group]
    mass = take_rows(tokens.mass, slots).to(F64)
    last = torch.full((b,), -1, dtype=torch.int64, device=slots.device)
    last = last.scatter_reduce(0, group, torch.where(fam, ticks, -1), "amax")[group]
    hit = m > 0
    # duplicate slots write identical values, so the order of the writes does not matter
    tokens.pos.index_copy_(0, slots, torch.where(hit[:, None], moved, pos).to(torch.float32))
    new_mass = torch.where(hit, torch.clamp(mass + gain, cdna.mass_min, cdna.mass_max), mass)
    tokens.mass.index_copy_(0, slots, new_mass.to(torch.float32))
    tokens.hits.index_copy_(0, slots, (take_rows(tokens.hits, slots) + m).to(torch.int32))
    tokens.seen.index_copy_(0, slots, torch.where(hit, last, take_rows(tokens.seen, slots)))
    if slots.device.type == "cpu":  # the tree index keeps host-side bookkeeping of moved tokens
        moved_slots = slots.numpy()[fam.numpy()]
        if moved_slots.size:
            st.index.moved(np.unique(moved_slots))


def _triggered(
    tokens: TokenState, starts: torch.Tensor, rows: torch.Tensor, nodes: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Ids of activated tokens (each row's start included) of a trigger kind, as ``(ids, offsets [B+1])``.

    ``ids`` keeps the length of all activated tokens (no host sync): row ``i`` triggered
    ``ids[offsets[i]:offsets[i + 1]]`` (its start first, then in order of arrival); entries past
    ``offsets[B]`` are unused.
    """
    b = starts.shape[0]
    all_nodes = torch.cat([starts, nodes])
    all_rows = torch.cat([torch.arange(b, device=starts.device), rows])
    kind = take_rows(tokens.kind, all_nodes)
    hit = torch.zeros_like(all_nodes, dtype=torch.bool)
    for code in TRIGGER_KINDS:
        hit |= kind == code
    order = torch.sort(torch.where(hit, all_rows, b), stable=True).indices  # by row; misses last
    counts = torch.zeros(b, dtype=torch.int64, device=starts.device).scatter_add_(0, all_rows, hit.long())
    offsets = torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)])
    return take_rows(tokens.ids, all_nodes[order]), offsets
