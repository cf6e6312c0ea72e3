"""The emergent hierarchy: fields of tokens, fields of fields (DESIGN §5).

A rebuild looks at the tokens as they are now (positions, masses, learned links) and, level by level,
turns groups into tokens one level up:

1. the alive level-``L`` tokens are grouped into basins of their mass density
   (:class:`~neurograph.hierarchy.basins.BasinGrouping`; the links are the learned edges at least
   ``field_link_confidence`` confident at level 0, and those edges coarsened to the fields above;
   from ``L = 1`` on, the tokens are fields: each finds its own group by the gaps of its distances,
   ``of_fields=True``);
2. each basin with at least ``min_field_size`` members (at ``L >= 1``: two, a field of fields) becomes a
   level-``L+1`` *field token*:

   - ``pos``: the mass-weighted centroid of its children; ``vel``: their mass-weighted mean velocity
     (momentum is kept);
   - ``mass``: the sum of its children's masses, exactly. Fields are bounded by ``field_mass_max``
     (default 1e12), not ``mass_max``, which bounds the signal tokens: a field of a thousand tokens weighs
     a thousand tokens. (A CDNA change clamps every mass into ``mass_max`` through the engine's
     ``_conform``; the next rebuild restores the sums.)
   - ``radius``: the *extent*, ``max_children (d(centroid, child) + child radius)``: the smallest ball
     about the centroid holding every child's ball, so a field's ball holds all its descendants' balls.
     It is clamped into ``[radius_min, radius_max]``;
   - ``strength``: the mass-weighted mean of its children's (an intensive property); ``hits``: the sum;
     ``seen``: the latest; ``kind``: ``pattern``; ``level``: ``L + 1``;
   - every child gets ``parent`` = the field's slot and a ``part_of`` edge (kind 0x60, immutable,
     structural: outside the adjacency tables) to it; tokens of smaller basins get ``parent = -1``;
3. repeat on the new fields, up to ``max_levels`` levels above the signal tokens.

Fields keep their id (and slot) across rebuilds while they persist, matched by member overlap
(:mod:`neurograph.hierarchy.matching`); ``field.born``, ``field.died``, ``field.merged`` and
``field.split`` say what changed. Fields that did not persist are killed (ids are never reused) with
their ``part_of`` edges. Only level-0 tokens are in the neighbour index, so fields never disturb novelty.

A rebuild is planned first (:func:`plan_hierarchy`, no state changes), so that the Guardian can check
the growth against the quotas, and then applied (:func:`apply_hierarchy`). ``Engine.hierarchy()`` does
both and returns a :class:`~neurograph.hierarchy.view.Hierarchy` snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from neurograph.cdna import CDNA
from neurograph.guardian import Guardian
from neurograph.hierarchy.basins import BasinGrouping
from neurograph.hierarchy.matching import Matching, match_fields
from neurograph.kinds import FIELD_KIND, IMMUTABLE, PART_OF, is_learned_kind
from neurograph.state import EdgeState, TokenState

__all__ = [
    "HierarchyPlan",
    "LevelPlan",
    "apply_hierarchy",
    "grouping_of",
    "plan_hierarchy",
    "rebuild_hierarchy",
]


@dataclass
class _Members:
    """The tokens of one level, as the grouping sees them (device tensors, host slots)."""

    slots: np.ndarray  # [n] store slots (planned slots for fields not yet appended)
    old_parent: np.ndarray  # [n] parent slot before the rebuild (-1 none or new)
    pos: Tensor  # [n, 8]
    vel: Tensor  # [n, 8]
    mass: Tensor  # [n] float64 (exact sums)
    radius: Tensor  # [n] float64 (exact extents)
    strength: Tensor  # [n]
    hits: Tensor  # [n] int64
    seen: Tensor  # [n] int64
    links: Tensor  # [2, L] rows of strong links among these tokens


@dataclass
class LevelPlan:
    """The fields planned at one level.

    Shapes:
        member_slots ``[n]``, cluster ``[n]`` (field number of each member, -1 none), rest ``[n]``
        (distance member -> its field); field_slots ``[G]``, is_new ``[G]``, pos/vel ``[G, 8]``,
        mass/radius/strength ``[G]`` (exact, before clamping), hits/seen ``[G]``; old_slots ``[F]``.
    """

    level: int  # level of the fields (members are one level below)
    member_slots: np.ndarray
    cluster: np.ndarray
    rest: np.ndarray
    field_slots: np.ndarray
    is_new: np.ndarray
    pos: Tensor
    vel: Tensor
    mass: Tensor
    radius: Tensor
    strength: Tensor
    hits: Tensor
    seen: Tensor
    old_slots: np.ndarray
    matching: Matching

    @property
    def n_fields(self) -> int:
        return int(self.field_slots.size)


@dataclass
class HierarchyPlan:
    """Everything a rebuild will change, computed before any change (see :func:`plan_hierarchy`)."""

    levels: list[LevelPlan]
    n_new_tokens: int  # field tokens to append
    kill: np.ndarray  # slots of fields that did not persist
    edge_src: np.ndarray  # [P] desired part_of edges: child slot ...
    edge_dst: np.ndarray  # [P] ... parent slot
    edge_rest: np.ndarray  # [P] child-parent distance
    edge_existing: np.ndarray  # [P] slot of the existing edge for each desired pair, -1 to append
    edge_remove: np.ndarray  # slots of part_of edges no longer wanted
    first_slot: int  # token count when planned (new fields are appended from here)
    orphans: np.ndarray  # slots whose parent becomes -1 besides the planned members (max_levels = 0)
    dropped: np.ndarray  # slots of fields above max_levels (killed: they die)
    dropped_sizes: np.ndarray  # their member counts

    @property
    def n_new_edges(self) -> int:
        return int((self.edge_existing < 0).sum())

    def __repr__(self) -> str:
        sizes = [lv.n_fields for lv in self.levels]
        return (
            f"HierarchyPlan(fields per level={sizes}, new tokens={self.n_new_tokens}, "
            f"killed={self.kill.size}, new edges={self.n_new_edges}, removed edges={self.edge_remove.size})"
        )


def grouping_of(cdna: CDNA) -> BasinGrouping:
    """The :class:`BasinGrouping` the CDNA asks for."""
    return BasinGrouping(
        k=cdna.field_neighbors,
        persistence=cdna.field_persistence,
        min_size=cdna.min_field_size,
        rule=cdna.field_persistence_rule,
    )


def plan_hierarchy(
    tokens: TokenState, edges: EdgeState, cdna: CDNA, grouping: BasinGrouping | None = None
) -> HierarchyPlan:
    """Plan a rebuild of every level from the current state; nothing is changed.

    Args:
        tokens: the token store.
        edges: the edge store.
        cdna: the constitution in force (``max_levels``, ``min_field_size``, ``field_*``, bounds).
        grouping: the grouping method (default: :func:`grouping_of` the CDNA).

    Returns:
        A :class:`HierarchyPlan` for :func:`apply_hierarchy`.
    """
    grouping = grouping or grouping_of(cdna)
    n = tokens.count
    dev = tokens.device
    alive = tokens.alive[:n].cpu().numpy()
    level = tokens.level[:n].cpu().numpy().astype(np.int64)
    parent = tokens.parent[:n].cpu().numpy()
    scale = torch.tensor(cdna.axis_scale, dtype=torch.float32, device=dev)
    members = _level0(tokens, edges, cdna, np.nonzero(alive & (level == 0))[0], parent)
    next_slot = n
    plans: list[LevelPlan] = []
    kill: list[np.ndarray] = []
    for lv in range(1, cdna.max_levels + 1):
        old_slots = np.nonzero(alive & (level == lv))[0]
        plan = _plan_level(grouping, members, lv, old_slots, alive, parent, next_slot, scale, cdna)
        next_slot += int(plan.is_new.sum())
        kill.append(old_slots[_gone(plan.matching)])
        plans.append(plan)
        members = _next_members(plan, parent)
    dropped = np.nonzero(alive & (level > cdna.max_levels))[0]
    kill.append(dropped)
    kill_slots = np.concatenate(kill).astype(np.int64)
    src, dst, rest, existing, remove = _part_of_edges(edges, plans, cdna, next_slot)
    orphans = members.slots if not plans else np.zeros(0, np.int64)  # no level planned: nobody has a field
    return HierarchyPlan(
        levels=plans,
        n_new_tokens=next_slot - n,
        kill=kill_slots,
        edge_src=src,
        edge_dst=dst,
        edge_rest=rest,
        edge_existing=existing,
        edge_remove=remove,
        first_slot=n,
        orphans=orphans,
        dropped=dropped,
        dropped_sizes=np.bincount(parent[alive] + 1, minlength=n + 1)[dropped + 1],
    )


def apply_hierarchy(
    plan: HierarchyPlan, tokens: TokenState, edges: EdgeState, cdna: CDNA, tick: int
) -> list[tuple[str, dict[str, Any]]]:
    """Apply a plan (the caller checked the quotas) and return the lifecycle events to publish.

    Returns:
        ``[(event_type, data), ...]`` with ``event_type`` one of ``field.born``, ``field.died``,
        ``field.merged``, ``field.split``.
    """
    if tokens.count != plan.first_slot:
        raise RuntimeError("the token store changed between plan_hierarchy and apply_hierarchy")
    old_slots = [lv.old_slots for lv in plan.levels]
    old_ids = dict(_ids_of(tokens, np.concatenate(old_slots) if old_slots else np.zeros(0, np.int64)))
    dropped = [
        ("field.died", {"level": int(lv), "tick": tick, "id": int(i), "size": int(n)})
        for i, lv, n in zip(
            tokens.gather("ids", plan.dropped), tokens.gather("level", plan.dropped), plan.dropped_sizes
        )
    ]
    for lv in plan.levels:
        _write_fields(lv, tokens, cdna, tick)
    for lv in plan.levels:  # parents: every member of every level, -1 outside a field
        par = np.full(lv.cluster.size, -1, np.int64)
        par[lv.cluster >= 0] = lv.field_slots[lv.cluster[lv.cluster >= 0]]
        if lv.member_slots.size:
            tokens.scatter("parent", lv.member_slots, par)
    top = plan.levels[-1] if plan.levels else None
    if top is not None and top.n_fields:
        tokens.scatter("parent", top.field_slots, -1)
    if plan.orphans.size:
        tokens.scatter("parent", plan.orphans, -1)
    tokens.kill(plan.kill)
    edges.ensure_nodes(tokens.capacity, cdna.max_degree)
    edges.remove(plan.edge_remove)
    keep = plan.edge_existing >= 0
    if keep.any():
        edges.scatter("rest", plan.edge_existing[keep], plan.edge_rest[keep].astype(np.float32))
    if (~keep).any():
        edges.append(
            plan.edge_src[~keep],
            plan.edge_dst[~keep],
            tick,
            kind=PART_OF,
            weight=np.float32(np.clip(1.0, cdna.weight_min, cdna.weight_max)),
            rest=plan.edge_rest[~keep].astype(np.float32),
            confidence=np.float32(1.0),
            mutability=IMMUTABLE,
            evidence=0,
        )
    return _events(plan, tokens, old_ids, tick) + dropped


# --- planning one level -------------------------------------------------------------------------------
def rebuild_hierarchy(
    tokens: TokenState, edges: EdgeState, cdna: CDNA, guardian: Guardian, tick: int
) -> list[tuple[str, dict[str, Any]]]:
    """Plan a rebuild, let the Guardian check its growth, apply it (plan -> Guardian -> apply).

    Returns:
        The lifecycle events ``(event_type, data)`` to publish on ``status``.

    Raises:
        QuotaExceeded: the new field tokens or ``part_of`` edges would break a quota (nothing changed).
    """
    plan = plan_hierarchy(tokens, edges, cdna)
    guardian.check_growth(
        cdna,
        tokens,
        edges,
        new_tokens=plan.n_new_tokens,
        new_edges=plan.n_new_edges,
        removed_tokens=plan.kill.size,
        removed_edges=plan.edge_remove.size,
    )
    return apply_hierarchy(plan, tokens, edges, cdna, tick)


def _level0(
    tokens: TokenState, edges: EdgeState, cdna: CDNA, slots: np.ndarray, parent: np.ndarray
) -> _Members:
    dev = tokens.device
    idx = torch.from_numpy(slots).to(dev)
    m = edges.count
    row_of = torch.full((tokens.count,), -1, dtype=torch.int64, device=dev)
    row_of[idx] = torch.arange(slots.size, device=dev)
    strong = edges.alive[:m] & is_learned_kind(edges.kind[:m])
    strong &= edges.confidence[:m] >= cdna.field_link_confidence
    a, b = row_of[edges.src[:m][strong]], row_of[edges.dst[:m][strong]]
    ok = (a >= 0) & (b >= 0)
    return _Members(
        slots=slots,
        old_parent=parent[slots],
        pos=tokens.pos[idx],
        vel=tokens.vel[idx],
        mass=tokens.mass[idx].double(),
        radius=tokens.radius[idx].double(),
        strength=tokens.strength[idx],
        hits=tokens.hits[idx].long(),
        seen=tokens.seen[idx],
        links=torch.stack([a[ok], b[ok]]),
    )


def _plan_level(
    grouping: BasinGrouping,
    mem: _Members,
    lv: int,
    old_slots: np.ndarray,
    alive: np.ndarray,
    parent: np.ndarray,
    next_slot: int,
    scale: Tensor,
    cdna: CDNA,
) -> LevelPlan:
    from torch_geometric.utils import scatter  # here: PyG pulls in torch._dynamo

    basins = grouping(mem.pos, mem.mass.float(), scale, mem.links, of_fields=lv > 1)
    c = basins.cluster  # (n,) device
    g = basins.n_fields
    sel = (c >= 0).nonzero().squeeze(1)  # (s,) rows in a field (one nonzero for every column below)
    cs = c.index_select(0, sel)
    w = mem.mass.index_select(0, sel)  # (s,) float64
    p = mem.pos.index_select(0, sel).double()  # (s, 8)
    # pooling of the members into their fields (PyG's scatter: sums, means by mass, maxima)
    msum = scatter(w, cs, dim=0, dim_size=g, reduce="sum")  # (G,)
    pos = scatter(w[:, None] * p, cs, dim=0, dim_size=g, reduce="sum") / msum[:, None]  # (G, 8) centroids
    v = mem.vel.index_select(0, sel)
    vel = scatter(w[:, None] * v, cs, dim=0, dim_size=g, reduce="sum") / msum[:, None]
    wst = w * mem.strength.index_select(0, sel)
    strength = scatter(wst, cs, dim=0, dim_size=g, reduce="sum") / msum
    hits = scatter(mem.hits.index_select(0, sel), cs, dim=0, dim_size=g, reduce="sum")
    seen = scatter(mem.seen.index_select(0, sel), cs, dim=0, dim_size=g, reduce="max")
    diff = p - pos[cs]  # (s, 8)
    d = torch.sqrt((diff * diff * scale.double()).sum(1))  # (s,) member -> centroid
    radius = scatter(d + mem.radius.index_select(0, sel), cs, dim=0, dim_size=g, reduce="max")
    # identity: old fields at this level, their member counts before the rebuild
    index_of = np.full(alive.size + 1, -1, np.int64)  # slot -> old field index (last entry: none)
    index_of[old_slots] = np.arange(old_slots.size)
    par_alive = parent[alive]
    old_sizes = np.bincount(index_of[par_alive][index_of[par_alive] >= 0], minlength=old_slots.size)
    old_of_member = np.where(mem.old_parent >= 0, index_of[mem.old_parent], -1)
    cluster = c.cpu().numpy()
    matching = match_fields(cluster, old_of_member, g, old_sizes, cdna.field_overlap)
    is_new = matching.inherit < 0
    field_slots = next_slot + np.cumsum(is_new) - 1  # (G,) planned slots of new fields ...
    field_slots[~is_new] = old_slots[matching.inherit[~is_new]]  # ... and the slots of persisting ones
    rest = np.zeros(cluster.size)
    rest[cluster >= 0] = d.cpu().numpy()
    return LevelPlan(
        level=lv,
        member_slots=mem.slots,
        cluster=cluster,
        rest=rest,
        field_slots=field_slots.astype(np.int64),
        is_new=is_new,
        pos=pos,
        vel=vel,
        mass=msum,
        radius=radius,
        strength=strength,
        hits=hits,
        seen=seen,
        old_slots=old_slots,
        matching=matching,
    )


def _next_members(plan: LevelPlan, parent: np.ndarray) -> _Members:
    """The fields of a plan as the members of the next level (links coarsened through the clusters)."""
    dev = plan.pos.device
    old_parent = np.full(plan.n_fields, -1, np.int64)
    old_parent[~plan.is_new] = parent[plan.field_slots[~plan.is_new]]
    return _Members(
        slots=plan.field_slots,
        old_parent=old_parent,
        pos=plan.pos.float(),
        vel=plan.vel.float(),
        mass=plan.mass,
        radius=plan.radius,
        strength=plan.strength.float(),
        hits=plan.hits,
        seen=plan.seen,
        links=torch.zeros(2, 0, dtype=torch.int64, device=dev),
    )


def _gone(m: Matching) -> np.ndarray:
    """Old field indices whose id does not pass on (died or absorbed)."""
    taken = np.zeros(m.old_sizes.size, bool)
    taken[m.inherit[m.inherit >= 0]] = True
    return np.nonzero(~taken)[0]


def _part_of_edges(
    edges: EdgeState, plans: list[LevelPlan], cdna: CDNA, n_slots: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Desired part_of pairs, which of them exist already, and the existing ones to remove."""
    src, dst, rest = [], [], []
    if cdna.allows_edge_kind(PART_OF):
        for lv in plans:
            inside = lv.cluster >= 0
            src.append(lv.member_slots[inside])
            dst.append(lv.field_slots[lv.cluster[inside]])
            rest.append(np.clip(lv.rest[inside], cdna.rest_min, cdna.rest_max))
    cat = lambda xs, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(0, dt)  # noqa: E731
    src, dst, rest = cat(src, np.int64), cat(dst, np.int64), cat(rest, np.float64)
    m = edges.count
    mine = (edges.alive[:m] & (edges.kind[:m] == PART_OF)).cpu().numpy()
    slots = np.nonzero(mine)[0]  # existing part_of edges
    have = edges.gather("src", slots) * n_slots + edges.gather("dst", slots)  # pair keys
    want = src * n_slots + dst
    order = np.argsort(have, kind="stable")
    at = np.minimum(np.searchsorted(have[order], want), max(have.size - 1, 0))
    found = have[order][at] == want if have.size else np.zeros(want.size, bool)
    existing = np.where(found, slots[order][at], -1) if have.size else np.full(want.size, -1, np.int64)
    remove = slots[~np.isin(have, want)]
    return src, dst, rest, existing.astype(np.int64), remove


# --- applying -----------------------------------------------------------------------------------------
def _write_fields(lv: LevelPlan, tokens: TokenState, cdna: CDNA, tick: int) -> None:
    """Append the new fields of a level and update the persisting ones."""
    if lv.n_fields == 0:
        return
    cols = {
        "pos": lv.pos.float(),
        "vel": lv.vel.float(),
        "mass": lv.mass.clamp(cdna.mass_min, cdna.field_mass_max).float(),
        "radius": lv.radius.clamp(cdna.radius_min, cdna.radius_max).float(),
        "strength": lv.strength.clamp(cdna.strength_min, cdna.strength_max).float(),
        "hits": lv.hits.clamp_max(2**31 - 1).int(),
        "seen": lv.seen,
    }
    new = np.nonzero(lv.is_new)[0]
    if new.size:
        sel = torch.from_numpy(new).to(lv.pos.device)
        slots = tokens.append(
            int(new.size),
            tick=tick,
            kind=FIELD_KIND,
            level=lv.level,
            parent=-1,
            activation=0.0,
            **{name: col[sel] for name, col in cols.items()},
        )
        if not np.array_equal(slots, lv.field_slots[new]):
            raise RuntimeError("field tokens landed in other slots than planned")
    old = np.nonzero(~lv.is_new)[0]
    if old.size:
        sel = torch.from_numpy(old).to(lv.pos.device)
        for name, col in cols.items():
            tokens.scatter(name, lv.field_slots[old], col[sel].cpu().numpy())


def _ids_of(tokens: TokenState, slots: np.ndarray) -> list[tuple[int, int]]:
    slots = np.asarray(slots, dtype=np.int64)
    return list(zip(slots.tolist(), tokens.gather("ids", slots).tolist())) if slots.size else []


def _events(
    plan: HierarchyPlan, tokens: TokenState, old_ids: dict[int, int], tick: int
) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    for lv in plan.levels:
        m = lv.matching
        new_id = tokens.gather("ids", lv.field_slots) if lv.n_fields else np.zeros(0, np.int64)
        old_id = np.array([old_ids[int(s)] for s in lv.old_slots], np.int64)
        base = {"level": lv.level, "tick": tick}
        for g in m.born.tolist():
            pos = lv.pos[g].tolist()
            out.append(
                ("field.born", {**base, "id": int(new_id[g]), "size": int(m.new_sizes[g]), "pos": pos})
            )
        for g, olds in m.merged:
            merged = [int(old_id[f]) for f in olds]
            out.append(
                (
                    "field.merged",
                    {**base, "id": int(new_id[g]), "merged": merged, "size": int(m.new_sizes[g])},
                )
            )
        for f, parts in m.split:
            ids = [int(new_id[g]) for g in parts]
            sizes = [int(m.new_sizes[g]) for g in parts]
            out.append(("field.split", {**base, "id": int(old_id[f]), "parts": ids, "sizes": sizes}))
        for f in m.died.tolist():
            out.append(("field.died", {**base, "id": int(old_id[f]), "size": int(m.old_sizes[f])}))
    return out
