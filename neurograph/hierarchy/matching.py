"""Field identity across rebuilds: matching new fields to old ones by member overlap (DESIGN §5).

Every rebuild of the hierarchy groups the tokens afresh. A field *persists* when a new group shares
enough members with it; it then keeps its id (and its token slot). With ``M[g, f]`` the number of
members new group ``g`` shares with old field ``f`` (members counted by the parent pointers the tokens
carried before the rebuild), ``g`` and ``f`` are **linked** when

    M[g, f] >= overlap * min(|g|, |f|)          (overlap = CDNA ``field_overlap``, default 0.5)

i.e. when at least half of the smaller of the two is shared. Ids pass along links, greedily by
decreasing ``M`` (ties by group, then old field), each id to at most one group and each group taking at
most one id: the largest successor of a field keeps its id, a merged field keeps the id of the field it
shares most with. Unchanged fields (same members) always keep their ids.

Transitions, each published once as an event by the engine:

- ``field.born``: a group linked to no old field (a new id).
- ``field.died``: an old field linked to no group (its id is gone).
- ``field.merged``: a group linked to two or more old fields; the ids of those that did not pass on
  are gone (absorbed, not reported as died).
- ``field.split``: an old field linked to two or more groups; the parts that did not take its id get new
  ids (announced here, not as births).

All of this is host-side bookkeeping over fields and links (no loop over tokens).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Matching", "match_fields"]


@dataclass(frozen=True)
class Matching:
    """How the groups of a rebuild relate to the fields before it.

    Shapes:
        inherit ``[G]``: old field each group continues (its id passes on), -1 for a new id;
        new_sizes ``[G]``; old_sizes ``[F]``; born ``[b]`` group indices; died, absorbed ``[d]`` old
        field indices; links ``[L, 3]`` rows ``(group, old field, shared members)``.
    """

    inherit: np.ndarray
    new_sizes: np.ndarray
    old_sizes: np.ndarray
    born: np.ndarray
    died: np.ndarray
    absorbed: np.ndarray
    merged: tuple[tuple[int, tuple[int, ...]], ...]  # (group, old fields it merges), >= 2 old fields
    split: tuple[tuple[int, tuple[int, ...]], ...]  # (old field, groups it split into), >= 2 groups
    links: np.ndarray

    @property
    def unchanged(self) -> bool:
        """No field was born, died, merged or split (ids may still have moved members)."""
        return not (self.born.size or self.died.size or self.merged or self.split)

    def __repr__(self) -> str:
        return (
            f"Matching(groups={self.inherit.size}, old={self.old_sizes.size}, born={self.born.size}, "
            f"died={self.died.size}, merged={len(self.merged)}, split={len(self.split)})"
        )


def match_fields(
    group: np.ndarray, old: np.ndarray, n_groups: int, old_sizes: np.ndarray, overlap: float = 0.5
) -> Matching:
    """Link the new groups of a rebuild to the old fields (see the module docstring).

    Args:
        group: ``[n]`` new group of each member (``0..n_groups-1``, -1 none).
        old: ``[n]`` old field of each member (``0..F-1``, -1 none).
        n_groups: ``G``, the number of new groups.
        old_sizes: ``[F]`` members each old field had before the rebuild (members that are gone count).
        overlap: the share of the smaller member set two fields must have in common to be linked.

    Returns:
        The :class:`Matching`.
    """
    group = np.asarray(group, dtype=np.int64)
    old = np.asarray(old, dtype=np.int64)
    old_sizes = np.asarray(old_sizes, dtype=np.int64)
    n_old = old_sizes.size
    new_sizes = np.bincount(group[group >= 0], minlength=n_groups).astype(np.int64)
    both = (group >= 0) & (old >= 0)
    key = group[both] * max(n_old, 1) + old[both]
    uniq, shared = np.unique(key, return_counts=True)
    g, f = uniq // max(n_old, 1), uniq % max(n_old, 1)
    linked = shared >= overlap * np.minimum(new_sizes[g], old_sizes[f])
    g, f, shared = g[linked], f[linked], shared[linked]
    inherit = np.full(n_groups, -1, np.int64)
    taken = np.zeros(n_old, bool)
    for i in np.lexsort((f, g, -shared)).tolist():  # one pass over the links, largest overlap first
        if inherit[g[i]] < 0 and not taken[f[i]]:
            inherit[g[i]] = f[i]
            taken[f[i]] = True
    preds = np.bincount(g, minlength=n_groups)
    succs = np.bincount(f, minlength=n_old)
    merged = tuple((int(gi), tuple(int(x) for x in np.sort(f[g == gi]))) for gi in np.nonzero(preds >= 2)[0])
    split = tuple((int(fi), tuple(int(x) for x in np.sort(g[f == fi]))) for fi in np.nonzero(succs >= 2)[0])
    return Matching(
        inherit=inherit,
        new_sizes=new_sizes,
        old_sizes=old_sizes,
        born=np.nonzero(preds == 0)[0],
        died=np.nonzero(succs == 0)[0],
        absorbed=np.nonzero((succs > 0) & ~taken)[0],
        merged=merged,
        split=split,
        links=np.stack([g, f, shared], 1) if g.size else np.zeros((0, 3), np.int64),
    )
