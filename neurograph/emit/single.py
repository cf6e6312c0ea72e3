"""One signal through the engine's state on the CPU: the fast path of ``Engine.emit``.

:func:`ingest_one` gives exactly what :func:`neurograph.emit.batch.ingest_batch` gives for a batch of one
row (tests compare the two, result by result and tensor by tensor), with the batch machinery taken out:
one cKDTree query plus a pre-filtered pass over the index's buffer (``NeighborIndex.knn_one``), scalar
edge bookkeeping on the adjacency row of the resonating token, and a dict-based spread of activation. It
plans through the batch's own functions (``hebbian_success``, ``spread_one``, ``pair_terms``) and writes
through the stores' ``append``; at most ``k`` neighbours take part, so the bookkeeping around them is
plain Python on lists, with numpy kept for the arithmetic the batch does in numpy (same operations, same
bits). It reads and writes the stores through their numpy views, so it only runs on CPU stores; on CUDA
``emit`` takes the batch path.
"""

from __future__ import annotations

import time

import numpy as np

from neurograph.cdna import CDNA
from neurograph.emit.activation import spread_one
from neurograph.emit.batch import EmitState
from neurograph.emit.energy import pair_terms
from neurograph.emit.hebbian import hebbian_success
from neurograph.emit.results import EmitResult
from neurograph.kinds import ASSOCIATED_WITH, ENTITY_KINDS, HYPOTHESIS, LEARNABLE, TRIGGER_KINDS
from neurograph.space import AXES
from neurograph.state import TokenState

__all__ = ["ingest_one"]

_TRIGGER = frozenset(TRIGGER_KINDS)


def ingest_one(
    st: EmitState, cdna: CDNA, x: np.ndarray, priority: int, kind: int, tick: int, t0_ns: int
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
    max_degree = cdna.max_degree
    nbr, nd = index.knn_one(x, k, radius)  # sorted by (distance, slot)
    n_nbr = nd.shape[0]
    novel = n_nbr == 0 or float(nd[0]) > cdna.novelty_threshold
    slot = tokens.count if novel else int(nbr[0])
    resonance = np.exp(-nd / radius)  # float64, as the batch computes it
    res_l = resonance.tolist()
    o_arr = nbr if novel else nbr[1:]  # the other neighbours: co-activated with the result token
    others = o_arr.tolist()
    res_o = res_l if novel else res_l[1:]
    m = len(others)

    # co-activated pairs (slot, others[j]): reinforce the existing edges, plan the new ones
    degree = edges.np("degree")
    deg_slot = 0
    existing = [-1] * m  # edge slot joining (slot, others[j]), or -1
    if not novel and m:
        deg_slot = int(degree[slot])
        if deg_slot:
            col: dict[int, int] = {}
            for c, o in enumerate(edges.np("nbr")[slot, :deg_slot].tolist()):
                col.setdefault(o, c)  # the first column holding o, as argmax finds it
            adj_row = edges.np("adj")[slot, :deg_slot].tolist()
            existing = [adj_row[col[o]] if o in col else -1 for o in others]
    new_j: list[int] = []  # the j of the new edges; the i-th proposal enters slot's row at deg_slot + i
    upd_j: list[int] = []
    if m:
        allowed = cdna.allows_edge_kind(ASSOCIATED_WITH)
        deg_o = degree[o_arr].tolist()
        proposed = 0
        for j in range(m):
            if existing[j] >= 0:
                upd_j.append(j)
            elif allowed:
                if deg_slot + proposed < max_degree and deg_o[j] < max_degree:
                    new_j.append(j)
                proposed += 1
    n_new_edges = len(new_j)

    # the other neighbours' attributes (unchanged by this signal) and the energy terms before it
    if m:
        o_pos = tokens.np("pos")[o_arr].astype(np.float64)
        o_mass = tokens.np("mass")[o_arr].astype(np.float64)
        o_rad = tokens.np("radius")[o_arr].astype(np.float64)
        o_str = tokens.np("strength")[o_arr].astype(np.float64)
        had = np.array([e >= 0 for e in existing])
        if not novel:  # the result token and the edges as they are before this signal
            ex = np.array(existing, np.int64)
            w0 = np.where(had, edges.np("weight")[ex], 0.0)
            rest0 = np.where(had, edges.np("rest")[ex], 0.0)
            t0 = _token_row(tokens, slot)

    # quotas before anything grows
    st.guardian.check_growth(cdna, tokens, edges, new_tokens=int(novel), new_edges=n_new_edges)

    # apply
    if novel:
        tokens.append(
            1,
            tick=tick,
            pos=x,
            vel=0.0,
            mass=np.float32(cdna.token_mass(priority)),
            radius=np.float32(cdna.token_radius),
            strength=np.float32(cdna.token_strength),
            kind=kind,
            level=0,
            parent=-1,
            activation=0.0,
            hits=1,
        )
        index.add(np.array([slot]))
    edges.ensure_nodes(tokens.capacity, max_degree)
    final = existing  # the edge joining each pair after this signal
    if n_new_edges:
        c_init, w_min, w_max = cdna.confidence_init, cdna.weight_min, cdna.weight_max
        new_o = [others[j] for j in new_j]
        new_edges = edges.append(
            np.array([min(o, slot) for o in new_o], np.int64),
            np.array([max(o, slot) for o in new_o], np.int64),
            tick,
            kind=ASSOCIATED_WITH,
            weight=np.array([min(max(res_o[j] * c_init, w_min), w_max) for j in new_j], np.float32),
            rest=np.float32(cdna.rest_length),
            confidence=np.float32(min(1.0, c_init)),
            mutability=LEARNABLE if cdna.promotion_evidence <= 1 else HYPOTHESIS,
            evidence=1,
        ).tolist()
        final = existing.copy()
        for j, e in zip(new_j, new_edges):
            final[j] = e
    if upd_j:
        upd = np.array([existing[j] for j in upd_j], np.int64)
        conf, w, ev, mut = hebbian_success(
            edges.np("confidence")[upd].astype(np.float64),
            edges.np("weight")[upd].astype(np.float64),
            edges.np("evidence")[upd],
            edges.np("mutability")[upd],
            np.ones(upd.size, np.int64),
            np.array([res_o[j] for j in upd_j]),
            cdna,
        )
        edges.np("confidence")[upd] = conf
        edges.np("weight")[upd] = w
        edges.np("evidence")[upd] = ev
        edges.np("mutability")[upd] = mut
        edges.np("updated")[upd] = tick
    pos = tokens.np("pos")
    if not novel:
        moved = (1.0 - lr) * pos[slot].astype(np.float64) + lr * x.astype(np.float64)
        pos[slot] = np.minimum(np.maximum(moved, cdna.axis_min), cdna.axis_max)  # np.clip, less overhead
        mass = tokens.np("mass")
        gain = cdna.resonance_gain(priority)
        mass[slot] = min(max(float(mass[slot]) + gain, cdna.mass_min), cdna.mass_max)  # float64, as batches
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
        r_idx = np.array(reached, np.int64)  # distinct tokens: a plain maximum is np.maximum.at
        act[r_idx] = np.maximum(act[r_idx], np.array(energy, np.float32))
        nodes = [slot, *reached]
        trig = [s for s, kd in zip(nodes, kinds[nodes].tolist()) if kd in _TRIGGER]
    else:
        trig = [slot] if int(kinds[slot]) in _TRIGGER else []
    act[slot] = 1.0
    triggered = ids[trig].tolist() if trig else []

    # energy change of the pairs between the result token and its other neighbours
    energy_delta = 0.0
    if m:  # pair energies before (familiar only: a novel token did not exist) and after, in one pass
        fin = np.array(final, np.int64)
        has = fin >= 0
        w1 = np.where(has, edges.np("weight")[fin], 0.0)
        rest1 = np.where(has, edges.np("rest")[fin], 0.0)
        t1 = _token_row(tokens, slot)
        if novel:  # the new token against each other neighbour (pair_terms broadcasts)
            e = pair_terms(t1[0], o_pos, t1[1], o_mass, t1[2], o_rad, t1[3], o_str, w1, rest1, has, cdna)
            energy_delta = sum(e.tolist())  # summed left to right, as the batch path accumulates
        else:  # the resonating token before (row 0) and after (row 1) against each other neighbour
            ta = np.array([t0[1:], t1[1:]])  # (2, 3) mass, radius, strength
            e = pair_terms(
                np.stack([t0[0], t1[0]])[:, None, :],  # (2, 1, 8)
                o_pos,  # (m, 8)
                ta[:, 0:1],
                o_mass,
                ta[:, 1:2],
                o_rad,
                ta[:, 2:3],
                o_str,
                np.stack([w0, w1]),  # (2, m)
                np.stack([rest0, rest1]),
                np.stack([had, has]),
                cdna,
            ).tolist()  # (2, m)
            energy_delta = sum(e[1]) - sum(e[0])

    neighbors = []
    anomaly = 1.0
    if n_nbr:
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
                np.abs(pos[nbr]).argmax(1).tolist(),
            )
        ]
        padded = np.zeros(k)  # the batch path sums k columns with zeros for empty ones: same rounding
        padded[:n_nbr] = nd
        anomaly = min(float(padded.sum() / n_nbr) / radius, 1.0)
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
