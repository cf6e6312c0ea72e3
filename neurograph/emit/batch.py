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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from neurograph.cdna import CDNA
from neurograph.emit.activation import spread_numpy, spread_torch
from neurograph.emit.energy import row_pair_energy
from neurograph.emit.hebbian import hebbian_success, plan_edges
from neurograph.emit.novelty import resolve_batch
from neurograph.emit.results import BatchResult
from neurograph.guardian import Guardian
from neurograph.kinds import ASSOCIATED_WITH, HYPOTHESIS, LEARNABLE, TRIGGER_KINDS
from neurograph.neighbors import NeighborIndex
from neurograph.state import EdgeState, TokenState, cumcount, planned_bytes

__all__ = ["Stores", "ingest_batch"]


@dataclass
class Stores:
    """The mutable state one batch works on."""

    tokens: TokenState
    edges: EdgeState
    index: NeighborIndex
    guardian: Guardian


def ingest_batch(
    st: Stores, cdna: CDNA, x: np.ndarray, priority: np.ndarray, kind: np.ndarray, tick0: int
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
        The :class:`BatchResult` (``processing_time_us`` is filled by the caller).
    """
    tokens, edges, index = st.tokens, st.edges, st.index
    b = x.shape[0]
    k, radius, lr = cdna.max_neighbors, cdna.neighbor_radius, cdna.learning_rate
    sqrt_s = np.sqrt(np.asarray(cdna.axis_scale))

    # 1-2. neighbours and novelty (sequential semantics)
    res_slots, res_dist = index.knn(x, k, radius)
    first_new = tokens.count
    nov = resolve_batch(
        x.astype(np.float64) * sqrt_s, res_slots, res_dist, cdna.novelty_threshold, radius, first_new
    )
    slots, nbr, nd, new_rows = nov.slot, nov.nbr_slots, nov.nbr_dist, nov.new_rows
    n_new = int(new_rows.size)
    valid = nbr >= 0  # (B, k)
    resonance = np.where(valid, np.exp(-nd / radius), 0.0)  # (B, k)

    # 3. co-activated pairs, in signal order
    pair_mask = valid & (nbr != slots[:, None])
    pa = np.broadcast_to(slots[:, None], nbr.shape)[pair_mask]
    pb = nbr[pair_mask]
    pres = resonance[pair_mask]
    old_pair = (pa < first_new) & (pb < first_new)
    existing = np.full(pa.shape, -1, np.int64)
    if old_pair.any():
        existing[old_pair] = edges.find(pa[old_pair], pb[old_pair])
    deg = _degrees(edges, np.stack([pa, pb], 1), first_new)
    plan = plan_edges(pa, pb, pres, existing, deg, cdna)

    # "before" state for energy deltas (familiar rows only; novel tokens did not exist)
    fam = ~nov.is_novel
    existed = (slots < first_new)[:, None] & (nbr < first_new)  # both tokens existed before the batch
    before = None
    if fam.any():
        old_edge = np.where(existed[pair_mask], existing, -1)
        before = row_pair_energy(tokens, edges, cdna, slots, nbr, pair_mask, old_edge, existed)

    # 4. quotas, before anything grows
    bytes_after, alloc = planned_bytes(tokens, edges, n_new, plan.n_new, cdna.max_degree)
    st.guardian.check_growth(
        cdna,
        tokens_after=tokens.n_alive + n_new,
        edges_after=edges.n_alive + plan.n_new,
        bytes_after=bytes_after,
        alloc_bytes=alloc,
        device=tokens.device,
    )

    # 5. apply: new tokens ...
    tick_last = tick0 + b - 1
    if n_new:
        p = priority[new_rows]
        new_slots = tokens.append(
            n_new,
            tick=tick0,
            pos=x[new_rows],
            vel=np.zeros((n_new, x.shape[1]), np.float32),
            mass=np.clip(0.5 + cdna.mass_gain * p / 255.0, cdna.mass_min, cdna.mass_max).astype(np.float32),
            radius=np.float32(cdna.token_radius),
            strength=np.float32(cdna.token_strength),
            kind=kind[new_rows],
            level=0,
            parent=-1,
            activation=0.0,
            hits=1,
        )
        tokens.scatter("born", new_slots, tick0 + new_rows)
        tokens.scatter("seen", new_slots, tick0 + new_rows)
        index.add(new_slots)
    edges.ensure_nodes(tokens.capacity, cdna.max_degree)
    # ... new edges and reinforced edges ...
    first_new_edge = edges.count
    if plan.n_new:
        cnt = plan.new_count
        edges.append(
            plan.new_src,
            plan.new_dst,
            tick_last,
            kind=ASSOCIATED_WITH,
            weight=plan.new_weight.astype(np.float32),
            rest=np.float32(cdna.rest_length),
            confidence=np.minimum(1.0, cdna.confidence_init + (cnt - 1) * lr).astype(np.float32),
            mutability=np.where(cnt >= cdna.promotion_evidence, LEARNABLE, HYPOTHESIS),
            evidence=cnt,
        )
    if plan.upd_edge.size:
        e = plan.upd_edge
        conf, w, ev, mut = hebbian_success(
            edges.gather("confidence", e).astype(np.float64),
            edges.gather("weight", e).astype(np.float64),
            edges.gather("evidence", e),
            edges.gather("mutability", e),
            plan.upd_count,
            plan.upd_res,
            cdna,
        )
        edges.scatter("confidence", e, conf.astype(np.float32))
        edges.scatter("weight", e, w.astype(np.float32))
        edges.scatter("evidence", e, ev)
        edges.scatter("mutability", e, mut)
        edges.scatter("updated", e, tick_last)
    # ... resonating tokens move toward their signals and gain mass (sequential composition)
    if fam.any():
        _resonate(st, cdna, slots[fam], x[fam], priority[fam], tick0 + np.nonzero(fam)[0])

    # 6. spreading activation
    spread_rows, spread_nodes, spread_energy = _spread(st, cdna, slots)
    activation_spread = np.bincount(spread_rows, minlength=b)
    _raise_activation(tokens, spread_nodes, spread_energy)
    tokens.scatter("activation", slots, np.float32(1.0))
    trig_ids, trig_off = _triggered(tokens, slots, spread_rows, spread_nodes, b)

    # 7. results
    after = row_pair_energy(tokens, edges, cdna, slots, nbr, pair_mask, plan.edges_after(first_new_edge))
    energy = after - (before if before is not None else 0.0)
    n_valid = valid.sum(1)
    mean_d = np.where(valid, nd, 0.0).sum(1) / np.maximum(n_valid, 1)
    anomaly = np.where(n_valid == 0, 1.0, np.minimum(mean_d / radius, 1.0))
    safe = np.maximum(nbr, 0)
    ids = tokens.gather("ids", slots)
    nbr_ids = np.where(valid, tokens.gather("ids", safe), -1)
    nbr_kind = np.where(valid, tokens.gather("kind", safe), 0)
    nbr_aff = np.abs(tokens.gather("pos", safe)).argmax(-1)
    return BatchResult(
        token_ids=torch.from_numpy(ids),
        is_novel=torch.from_numpy(nov.is_novel),
        neighbor_ids=torch.from_numpy(nbr_ids),
        neighbor_distances=torch.from_numpy(np.where(valid, nd, np.inf).astype(np.float32)),
        neighbor_resonance=torch.from_numpy(resonance.astype(np.float32)),
        anomaly_scores=torch.from_numpy(anomaly.astype(np.float32)),
        energy_deltas=torch.from_numpy(energy.astype(np.float32)),
        activation_spread=torch.from_numpy(activation_spread.astype(np.int64)),
        triggered_ids=trig_ids,
        triggered_offsets=trig_off,
        processing_time_us=0.0,
        neighbor_kinds=nbr_kind,
        neighbor_affinity=nbr_aff,
    )


def _degrees(edges: EdgeState, pairs: np.ndarray, first_new: int) -> np.ndarray:
    """Current learned degree of each slot in ``pairs [P, 2]`` (0 for tokens of this batch)."""
    out = np.zeros(pairs.shape, np.int64)
    old = pairs < first_new
    if old.any():
        rows = edges.degree.shape[0]
        idx = pairs[old]
        inside = idx < rows
        vals = np.zeros(idx.shape, np.int64)
        vals[inside] = edges.gather("degree", idx[inside])
        out[old] = vals
    return out


def _resonate(
    st: Stores, cdna: CDNA, t: np.ndarray, v: np.ndarray, priority: np.ndarray, ticks: np.ndarray
) -> None:
    """Move each resonating token toward its signals and grow its mass, as ``m`` sequential updates would.

    ``pos <- pos + lr (v - pos)`` applied for signals ``v_1..v_m`` in order equals
    ``(1 - lr)^m pos + sum_i lr (1 - lr)^(m - i) v_i``.
    """
    tokens = st.tokens
    lr = cdna.learning_rate
    uniq, inv, counts = np.unique(t, return_inverse=True, return_counts=True)
    rank = cumcount(inv)
    w = lr * (1.0 - lr) ** (counts[inv] - 1 - rank)  # weight of each signal in the closed form
    acc = np.zeros((uniq.size, v.shape[1]))
    np.add.at(acc, inv, w[:, None] * v)
    pos = tokens.gather("pos", uniq).astype(np.float64)
    pos = (1.0 - lr) ** counts[:, None] * pos + acc
    pos = np.clip(pos, cdna.axis_min, cdna.axis_max)
    gain = np.bincount(inv, weights=lr * cdna.mass_gain * priority / 255.0, minlength=uniq.size)
    mass = np.clip(tokens.gather("mass", uniq) + gain, cdna.mass_min, cdna.mass_max)
    last_tick = np.zeros(uniq.size, np.int64)
    np.maximum.at(last_tick, inv, ticks)
    tokens.scatter("pos", uniq, pos.astype(np.float32))
    tokens.scatter("mass", uniq, mass.astype(np.float32))
    tokens.scatter("hits", uniq, tokens.gather("hits", uniq) + counts)
    tokens.scatter("seen", uniq, last_tick)
    st.index.moved(uniq)


def _spread(st: Stores, cdna: CDNA, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    edges = st.edges
    args = (cdna.activation_decay, cdna.activation_depth, cdna.activation_threshold)
    if edges.device.type == "cpu":
        return spread_numpy(
            starts, edges.np("adj"), edges.np("nbr"), edges.np("weight"), *args, cdna.weight_max
        )
    dev = edges.device
    r, n, e = spread_torch(
        torch.from_numpy(starts).to(dev), edges.adj, edges.nbr, edges.weight, *args, cdna.weight_max
    )
    return r.cpu().numpy(), n.cpu().numpy(), e.cpu().numpy()


def _raise_activation(tokens: TokenState, nodes: np.ndarray, energy: np.ndarray) -> None:
    """``activation[node] = max(activation[node], energy)``, correct when a node repeats."""
    if nodes.size == 0:
        return
    if tokens.device.type == "cpu":
        np.maximum.at(tokens.np("activation"), nodes, energy.astype(np.float32))
        return
    idx = torch.from_numpy(nodes).to(tokens.device)
    val = torch.from_numpy(energy.astype(np.float32)).to(tokens.device)
    tokens.activation.scatter_reduce_(0, idx, val, reduce="amax")


def _triggered(
    tokens: TokenState, starts: np.ndarray, rows: np.ndarray, nodes: np.ndarray, b: int
) -> tuple[np.ndarray, np.ndarray]:
    """Ids of activated tokens (each row's start included) of a trigger kind, as ``(ids, offsets [B+1])``."""
    trigger = np.isin(tokens.gather("kind", np.arange(tokens.count)), TRIGGER_KINDS)  # (n,) per slot
    if not trigger.any():
        return np.zeros(0, np.int64), np.zeros(b + 1, np.int64)
    all_nodes = np.concatenate([starts, nodes])
    all_rows = np.concatenate([np.arange(b), rows])
    hit = np.nonzero(trigger[all_nodes])[0]
    hit = hit[np.argsort(all_rows[hit], kind="stable")]  # by row; within a row: start, then arrival order
    offsets = np.zeros(b + 1, np.int64)
    np.cumsum(np.bincount(all_rows[hit], minlength=b), out=offsets[1:])
    return tokens.gather("ids", all_nodes[hit]), offsets
