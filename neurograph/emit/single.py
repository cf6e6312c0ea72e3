"""One signal through the engine's state on the CPU: the fast path of ``Engine.emit``.

:func:`ingest_one` gives exactly what :func:`neurograph.emit.batch.ingest_batch` gives for a batch of one
row (tests compare the two, result by result and tensor by tensor), with the batch machinery taken out:
one cKDTree query plus a brute-force pass over the index's buffer, scalar edge bookkeeping on the
adjacency rows of the resonating token, and a dict-based spread of activation. It reads and writes the
stores through their numpy views, so it only runs on CPU stores; on CUDA ``emit`` takes the batch path.
"""

from __future__ import annotations

import time

import numpy as np

from neurograph.cdna import CDNA
from neurograph.emit.activation import spread_one
from neurograph.emit.batch import Stores
from neurograph.emit.energy import pair_terms
from neurograph.emit.hebbian import hebbian_success
from neurograph.emit.results import EmitResult
from neurograph.kinds import ASSOCIATED_WITH, ENTITY_KINDS, HYPOTHESIS, LEARNABLE, TRIGGER_KINDS
from neurograph.space import AXES
from neurograph.state import TokenState, planned_bytes

__all__ = ["ingest_one"]

_NO_EDGES = np.zeros(0, np.int64)


def ingest_one(
    st: Stores, cdna: CDNA, x: np.ndarray, priority: int, kind: int, tick: int, t0_ns: int
) -> EmitResult:
    """Run one validated signal through a CPU state.

    Args:
        st: tokens, edges, index, guardian (CPU stores).
        cdna: the constitution in force.
        x: ``[8]`` float32 position, clamped into the box.
        priority: 0..255.
        kind: entity kind code of the token a novel signal creates.
        tick: the engine tick of this signal.
        t0_ns: ``time.perf_counter_ns()`` when the call started (for ``processing_time_us``).

    Returns:
        The :class:`~neurograph.emit.results.EmitResult`.
    """
    tokens, edges, index = st.tokens, st.edges, st.index
    k, radius, lr = cdna.max_neighbors, cdna.neighbor_radius, cdna.learning_rate
    nbr, nd = index.knn_one(x, k, radius)  # sorted by (distance, slot)
    novel = nd.size == 0 or nd[0] > cdna.novelty_threshold
    slot = tokens.count if novel else int(nbr[0])
    others = nbr if novel else nbr[1:]
    resonance = np.exp(-nd / radius)
    res_o = resonance if novel else resonance[1:]

    # co-activated pairs (slot, others[j]): reinforce the existing edges, plan the new ones
    adj, nbr_tab, degree = edges.np("adj"), edges.np("nbr"), edges.np("degree")
    deg_slot = 0
    existing = np.full(others.size, -1, np.int64)
    if not novel and others.size:
        deg_slot = int(degree[slot])
        if deg_slot:
            eq = nbr_tab[slot, :deg_slot][None, :] == others[:, None]  # (m, deg)
            has = eq.any(1)
            existing[has] = adj[slot, eq[has].argmax(1)]
    new = existing < 0
    if not cdna.allows_edge_kind(ASSOCIATED_WITH):
        new[:] = False
    cand = others[new]
    ok = (deg_slot + np.arange(cand.size) < cdna.max_degree) & (degree[cand] < cdna.max_degree)
    cand, cand_res = cand[ok], res_o[new][ok]
    upd = existing[existing >= 0]
    # the other neighbours' attributes (unchanged by this signal) and the energy before it
    m = others.size
    if m:
        o_pos = tokens.np("pos")[others].astype(np.float64)
        o_mass = tokens.np("mass")[others].astype(np.float64)
        o_rad = tokens.np("radius")[others].astype(np.float64)
        o_str = tokens.np("strength")[others].astype(np.float64)
        # the result token and the edges as they are before this signal
        had = existing >= 0
        w0 = np.where(had, edges.np("weight")[existing], 0.0)
        rest0 = np.where(had, edges.np("rest")[existing], 0.0)
        if not novel:
            t0 = _token_row(tokens, slot)

    # quotas before anything grows
    bytes_after, alloc = planned_bytes(tokens, edges, int(novel), cand.size, cdna.max_degree)
    st.guardian.check_growth(
        cdna,
        tokens_after=tokens.n_alive + int(novel),
        edges_after=edges.n_alive + cand.size,
        bytes_after=bytes_after,
        alloc_bytes=alloc,
        device=tokens.device,
    )

    # apply
    if novel:
        tokens.append(
            1,
            tick=tick,
            pos=x,
            vel=0.0,
            mass=np.float32(np.clip(0.5 + cdna.mass_gain * priority / 255.0, cdna.mass_min, cdna.mass_max)),
            radius=np.float32(cdna.token_radius),
            strength=np.float32(cdna.token_strength),
            kind=kind,
            level=0,
            parent=-1,
            activation=0.0,
            hits=1,
        )
        index.add(np.array([slot]))
    edges.ensure_nodes(tokens.capacity, cdna.max_degree)
    new_edges = _NO_EDGES
    if cand.size:
        lo = np.minimum(cand, slot)
        hi = np.maximum(cand, slot)
        new_edges = edges.append(
            lo,
            hi,
            tick,
            kind=ASSOCIATED_WITH,
            weight=np.clip(cand_res * cdna.confidence_init, cdna.weight_min, cdna.weight_max).astype(
                np.float32
            ),
            rest=np.float32(cdna.rest_length),
            confidence=np.float32(min(1.0, cdna.confidence_init)),
            mutability=LEARNABLE if cdna.promotion_evidence <= 1 else HYPOTHESIS,
            evidence=1,
        )
    if upd.size:
        ones = np.ones(upd.size, np.int64)
        conf, w, ev, mut = hebbian_success(
            edges.np("confidence")[upd].astype(np.float64),
            edges.np("weight")[upd].astype(np.float64),
            edges.np("evidence")[upd],
            edges.np("mutability")[upd],
            ones,
            res_o[existing >= 0],
            cdna,
        )
        edges.np("confidence")[upd] = conf
        edges.np("weight")[upd] = w
        edges.np("evidence")[upd] = ev
        edges.np("mutability")[upd] = mut
        edges.np("updated")[upd] = tick
    if not novel:
        pos = tokens.np("pos")
        moved = (1.0 - lr) * pos[slot].astype(np.float64) + lr * x.astype(np.float64)
        pos[slot] = np.clip(moved, cdna.axis_min, cdna.axis_max)
        mass = tokens.np("mass")
        gain = lr * cdna.mass_gain * priority / 255.0
        mass[slot] = np.clip(float(mass[slot]) + gain, cdna.mass_min, cdna.mass_max)  # float64, as batches
        tokens.np("hits")[slot] += 1
        tokens.np("seen")[slot] = tick
        index.moved(np.array([slot]))

    # spreading activation
    reached, energy = spread_one(
        slot,
        edges.np("adj"),  # fresh views: appends may have reallocated the tables
        edges.np("nbr"),
        edges.np("weight"),
        cdna.activation_decay,
        cdna.activation_depth,
        cdna.activation_threshold,
        cdna.weight_max,
    )
    act = tokens.np("activation")
    kinds = tokens.np("kind")
    ids = tokens.np("ids")
    if reached:
        np.maximum.at(act, reached, np.asarray(energy, np.float32))
    act[slot] = 1.0
    triggered = [int(ids[s]) for s in [slot, *reached] if kinds[s] in TRIGGER_KINDS]

    # energy change of the pairs between the result token and its other neighbours
    energy_delta = 0.0
    if m:  # pair energies before (familiar only: a novel token did not exist) and after, in one pass
        final = existing.copy()
        if cand.size:
            final[np.nonzero(new)[0][ok]] = new_edges
        has = final >= 0
        w1 = np.where(has, edges.np("weight")[final], 0.0)
        rest1 = np.where(has, edges.np("rest")[final], 0.0)
        t1 = _token_row(tokens, slot)
        rows = [t1] if novel else [t0, t1]
        r = len(rows)
        e = pair_terms(
            np.concatenate([np.broadcast_to(row[0], (m, 8)) for row in rows]),
            np.concatenate([o_pos] * r),
            np.concatenate([np.full(m, row[1]) for row in rows]),
            np.concatenate([o_mass] * r),
            np.concatenate([np.full(m, row[2]) for row in rows]),
            np.concatenate([o_rad] * r),
            np.concatenate([np.full(m, row[3]) for row in rows]),
            np.concatenate([o_str] * r),
            np.concatenate([w1] if novel else [w0, w1]),
            np.concatenate([rest1] if novel else [rest0, rest1]),
            np.concatenate([has] if novel else [had, has]),
            cdna,
        ).tolist()
        after = sum(e[-m:])  # summed left to right, as the batch path accumulates
        energy_delta = after - (0.0 if novel else sum(e[:m]))

    neighbors = [
        {
            "token_id": i,
            "distance": d,
            "resonance": r,
            "token_type": ENTITY_KINDS[kd],
            "layer_affinity": AXES[a],
        }
        for i, d, r, kd, a in zip(
            ids[nbr].tolist(),
            nd.astype(np.float32).tolist(),
            resonance.astype(np.float32).tolist(),
            kinds[nbr].tolist(),
            np.abs(tokens.np("pos")[nbr]).argmax(1).tolist(),
        )
    ]
    padded = np.zeros(k)  # the batch path sums k columns with zeros for empty ones: same rounding
    padded[: nd.size] = nd
    anomaly = 1.0 if nd.size == 0 else min(float(padded.sum() / nd.size) / radius, 1.0)
    return EmitResult(
        token_id=int(ids[slot]),
        is_novel=bool(novel),
        neighbors=neighbors,
        anomaly_score=float(np.float32(anomaly)),
        resonance=neighbors[0]["resonance"] if neighbors else 0.0,
        energy_delta=float(np.float32(energy_delta)),
        activation_spread=len(reached),
        triggered_actions=triggered,
        processing_time_us=(time.perf_counter_ns() - t0_ns) / 1e3,
    )


def _token_row(tokens: TokenState, slot: int) -> tuple[np.ndarray, float, float, float]:
    """``(pos [8] float64, mass, radius, strength)`` of one token, as they are now."""
    return (
        tokens.np("pos")[slot].astype(np.float64),
        float(tokens.np("mass")[slot]),
        float(tokens.np("radius")[slot]),
        float(tokens.np("strength")[slot]),
    )
