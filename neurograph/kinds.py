"""Every kind code of the package, defined once (DESIGN §2).

Tokens carry an *entity kind* (``TokenState.kind``, ``[C] i16``): what a token stands for. Edges carry a
*relation kind* (``EdgeState.kind``, ``[E] i16``) whose high nibble is its relation group (``kind & 0xF0``),
and a *mutability* code (``EdgeState.mutability``). Every module that needs one of these codes imports it
from here; no other module writes a kind code as a number.

- Entity kinds: :data:`ENTITY_KINDS` in code order (``ENTITY_KINDS[code] -> name``), :data:`KIND_CODE`
  (``name -> code``), :data:`DEFAULT_KIND` for a signal's new token, :data:`FIELD_KIND` for the tokens the
  hierarchy makes, :data:`TRIGGER_KINDS` whose activation is a triggered action (goal, actuator).
- Relation kinds: :data:`EDGE_GROUPS` (group name -> base code), :data:`STRUCTURAL_GROUP` (``part_of`` edges,
  kept out of the adjacency tables and never learned), :data:`ASSOCIATED_WITH` (edges learned from
  co-activation), :data:`PART_OF`, :data:`EDGE_KINDS` (every named kind).
- Mutability: :data:`IMMUTABLE`, :data:`LEARNABLE`, :data:`HYPOTHESIS`, and their names :data:`MUTABILITY`.

Turning user input (a kind name or code) into codes is validation, and lives in the Guardian
(:meth:`~neurograph.guardian.Guardian.check_kinds`).
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

__all__ = [
    "ASSOCIATED_WITH",
    "DEFAULT_KIND",
    "EDGE_GROUPS",
    "EDGE_KINDS",
    "ENTITY_KINDS",
    "FIELD_KIND",
    "HYPOTHESIS",
    "IMMUTABLE",
    "KIND_CODE",
    "LEARNABLE",
    "MUTABILITY",
    "PART_OF",
    "STRUCTURAL_GROUP",
    "TRIGGER_KINDS",
    "is_learned_kind",
]

#: Entity types of tokens, in code order (DESIGN §2).
ENTITY_KINDS: tuple[str, ...] = (
    "undefined",
    "object",
    "event",
    "state",
    "process",
    "concept",
    "relation",
    "pattern",
    "rule",
    "goal",
    "memory",
    "sensor",
    "actuator",
    "controller",
    "buffer",
)
KIND_CODE: dict[str, int] = {name: code for code, name in enumerate(ENTITY_KINDS)}
DEFAULT_KIND = KIND_CODE["concept"]  # a signal's new token, unless the caller names another kind
FIELD_KIND = KIND_CODE["pattern"]  # tokens of level >= 1 made by the hierarchy
TRIGGER_KINDS: tuple[int, ...] = (KIND_CODE["goal"], KIND_CODE["actuator"])  # activation = an action

#: Relation groups of edge kinds (DESIGN §2); an edge kind belongs to group ``kind & 0xF0``.
EDGE_GROUPS: dict[str, int] = {
    "semantic": 0x00,
    "causal": 0x10,
    "temporal": 0x20,
    "spatial": 0x30,
    "logical": 0x40,
    "associative": 0x50,
    "structural": 0x60,
    "functional": 0x70,
    "emotional": 0x80,
    "rule": 0x90,
    "dynamic": 0xA0,
}
STRUCTURAL_GROUP = EDGE_GROUPS["structural"]  # part_of edges: out of the adjacency tables, never learned
ASSOCIATED_WITH = EDGE_GROUPS["associative"]  # 0x50: edges learned from co-activation
PART_OF = STRUCTURAL_GROUP  # 0x60: child token -> its field (made by the hierarchy)
#: Edge kinds by name: the base kind of every relation group plus the named kinds.
EDGE_KINDS: dict[str, int] = {**EDGE_GROUPS, "associated_with": ASSOCIATED_WITH, "part_of": PART_OF}

IMMUTABLE, LEARNABLE, HYPOTHESIS = 0, 1, 2  # mutability codes of edges
MUTABILITY: tuple[str, ...] = ("immutable", "learnable", "hypothesis")  # names in code order

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


def is_learned_kind(kind: ArrayT) -> ArrayT:
    """Whether edges of these kinds are learned (every relation group but structural ``part_of``).

    Shapes:
        kind ``[E]`` integer -> ``[E]`` bool.
    """
    group = (kind.long() if isinstance(kind, torch.Tensor) else kind.astype(np.int64)) & 0xF0
    return group != STRUCTURAL_GROUP
