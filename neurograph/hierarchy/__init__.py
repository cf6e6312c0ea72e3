"""The emergent hierarchy (DESIGN §5): fields of tokens, fields of fields.

- :mod:`neurograph.hierarchy.basins`: density basins on a kNN plus strong-link graph, cut by
  persistence (the grouping of one level).
- :mod:`neurograph.hierarchy.gaps`: a level of fields of fields cut at the finest gap of its Ward
  dendrogram.
- :mod:`neurograph.hierarchy.landmarks`: a very large level grouped on mass-carrying landmarks.
- :mod:`neurograph.hierarchy.persistence`: the persistence diagram of a level's graph (exact, in parallel
  rounds), the threshold rules (``field_persistence_rule``) and the cut.
- :mod:`neurograph.hierarchy.build`: the whole rebuild, level by level, as a plan (nothing changes) and
  its application (field tokens, ``part_of`` edges, lifecycle events).
- :mod:`neurograph.hierarchy.matching`: field ids kept across rebuilds by member overlap; births,
  deaths, merges and splits.
- :mod:`neurograph.hierarchy.view`: :class:`Hierarchy`, the read-only snapshot users query (levels as
  PyG ``Data``, ``parent``, ``children``, ``path``, networkx and pandas exports).
"""

from neurograph.hierarchy.basins import BasinGrouping, Basins
from neurograph.hierarchy.build import (
    HierarchyPlan,
    LevelPlan,
    apply_hierarchy,
    grouping_of,
    plan_hierarchy,
    rebuild_hierarchy,
)
from neurograph.hierarchy.matching import Matching, match_fields
from neurograph.hierarchy.view import Hierarchy

__all__ = [
    "BasinGrouping",
    "Basins",
    "Hierarchy",
    "HierarchyPlan",
    "LevelPlan",
    "Matching",
    "apply_hierarchy",
    "grouping_of",
    "match_fields",
    "plan_hierarchy",
    "rebuild_hierarchy",
]
