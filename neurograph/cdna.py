"""The CDNA: the frozen, versioned constitution that bounds every update.

A :class:`CDNA` is an immutable value. It fixes the box and metric of the space, what counts as novel,
the bounds of tokens and edges, the learning rates, the dynamics and the spreading of activation. It is
validated on construction: an invalid constitution is refused with :class:`~neurograph.errors.InvalidCDNA`
listing *every* violated rule, not just the first.

Changing the constitution makes a new version (``replace`` bumps ``version``); :class:`CDNAHistory` keeps
the stack of versions an engine went through, with ``rollback()`` going back exactly one version, plus an
audit log of every change. ``hash`` is a content hash over every field except ``version``, so two CDNAs
with the same rules hash the same and any change of a rule changes the hash.

Profiles (``CDNA.profile(name)``):

- ``default``: balanced settings for exploring a data set.
- ``explorer``: wider neighbourhoods, higher degrees and more *mutation* (a larger learning rate: each
  signal rewrites tokens and edges more), a little temperature.
- ``analyst``: strict (out-of-box signals are rejected instead of clamped), lower degrees, fewer
  neighbours, slow learning.
- ``creative``: the most mutation and temperature, faster decay of unconfirmed hypotheses.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import numbers
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from neurograph import display
from neurograph.errors import InvalidCDNA
from neurograph.kinds import EDGE_GROUPS
from neurograph.space import AXES, DIM

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["CDNA", "PERSISTENCE_RULES", "PROFILES", "CDNAHistory"]

_VEC = tuple[float, ...]
_F32_MAX = 3.4028234663852886e38  # every CDNA number ends up in a float32 tensor
PERSISTENCE_RULES = ("fixed", "gap")  # values of field_persistence_rule (neurograph/hierarchy/persistence.py)


@dataclass(frozen=True)
class CDNA:
    """The constitution. All fields are plain numbers so that Hydra and YAML can set them.

    Use :meth:`replace` to derive a new version; never mutate (the dataclass is frozen).
    """

    # --- identity -----------------------------------------------------------------------------------
    name: str = "default"  # name of the profile this constitution started from
    version: int = 1  # bumped by every change; not part of the content hash
    # --- space: box and metric ----------------------------------------------------------------------
    axis_min: _VEC = (-1.0,) * DIM  # lower corner of the box every position is kept in
    axis_max: _VEC = (1.0,) * DIM  # upper corner of the box
    axis_scale: _VEC = (1.0,) * DIM  # s_i of the weighted metric d = sqrt(sum s_i dx_i^2)
    strict: bool = False  # reject out-of-box signals instead of clamping them
    # --- novelty ------------------------------------------------------------------------------------
    neighbor_radius: float = 0.2  # neighbours of a signal lie within this distance
    novelty_threshold: float = 0.1  # novel iff no token lies within this distance (<= radius)
    max_neighbors: int = 16  # k: at most this many neighbours per signal
    # --- tokens -------------------------------------------------------------------------------------
    mass_min: float = 0.1  # lightest token
    mass_max: float = 100.0  # heaviest token (fields included)
    mass_gain: float = 1.0  # a new token's mass is 0.5 + mass_gain * priority / 255
    radius_min: float = 0.01  # smallest field radius
    radius_max: float = 2.0  # largest field radius (fields of fields grow)
    token_radius: float = 0.05  # field radius of a new signal token (repulsion inside r_i + r_j)
    strength_min: float = 0.0  # weakest field strength
    strength_max: float = 1.0  # strongest field strength
    token_strength: float = 0.1  # field strength of a new signal token
    max_tokens: int = 10_000_000  # quota: alive tokens
    max_edges: int = 100_000_000  # quota: alive edges
    max_memory_bytes: int = 16 * 2**30  # quota: tensor footprint of the store
    # --- edges and learning -------------------------------------------------------------------------
    weight_min: float = 0.0  # weakest pull of an edge
    weight_max: float = 1.0  # strongest pull of an edge
    rest_min: float = 0.0  # shortest rest length
    rest_max: float = 1.0  # longest rest length
    rest_length: float = 0.05  # rest length of new edges
    max_degree: int = 32  # learned (non-structural) edges per token
    allowed_edge_kinds: tuple[int, ...] = tuple(EDGE_GROUPS.values())  # relation groups allowed
    learning_rate: float = 0.1  # "mutation": how far a resonance moves a token, confidence step on success
    decay_rate: float = 0.01  # confidence lost per engine tick by unconfirmed hypothesis edges
    confidence_init: float = 0.5  # confidence of a new hypothesis edge
    confidence_floor: float = 0.05  # edges below this confidence are pruned
    promotion_evidence: int = 5  # co-activations that promote a hypothesis edge to learnable
    # --- dynamics -----------------------------------------------------------------------------------
    dt: float = 0.01  # integrator time step
    max_speed: float = 1.0  # speed cap per token
    max_force: float = 10.0  # force cap per token
    temperature: float = 0.0  # Langevin temperature (0: deterministic)
    damping: float = 1.0  # friction coefficient gamma (velocity decays as exp(-gamma dt / m))
    spring_k: float = 1.0  # spring constant along edges (times edge weight)
    repulsion_k: float = 10.0  # soft-sphere stiffness inside r_i + r_j
    well_k: float = 1.0  # depth scale of field wells (times strength_j * mass_j)
    parent_k: float = 0.5  # pull toward the parent field
    skin: float = 0.05  # neighbour-list skin: rebuild when a token moved more than skin / 2
    # --- activation ---------------------------------------------------------------------------------
    activation_decay: float = 0.3  # E' = E * w * (1 - decay) per hop
    activation_depth: int = 3  # hops of spreading activation
    activation_threshold: float = 0.25  # energy below this does not reach a token
    # --- emergent hierarchy (neurograph/hierarchy.py, neurograph/basins.py) ----------------------------
    max_levels: int = 3  # levels of fields above the signal tokens (0: no hierarchy)
    min_field_size: int = 5  # members a basin needs to become a field token
    field_neighbors: int = 16  # k of the kNN graph the basins are found on
    field_persistence: float = 1.0  # rise (in log mass density) a basin's peak needs above its saddle
    field_persistence_rule: str = "fixed"  # "fixed": that rise; "gap": the widest gap of the diagram, >= it
    field_link_confidence: float = 0.5  # learned edges at least this confident join the basin graph
    field_overlap: float = 0.5  # shared share of the smaller member set that links an old and a new field
    field_mass_max: float = 1e12  # heaviest field token (a field weighs the sum of its children)
    # --- what tokens stand for (neurograph/memory.py) ---------------------------------------------------
    memory_sample: int = 4  # resonating signals sampled per token (reservoir), 0..64
    label_max_chars: int = 64  # longest label
    payload_max_bytes: int = 65_536  # largest payload (encoded)
    max_payload_bytes: int = 2**30  # quota: bytes of the payloads kept

    # ------------------------------------------------------------------------------------------------
    def __post_init__(self) -> None:
        # Normalise sequences to tuples of floats so hashing and equality are by value.
        for name in ("axis_min", "axis_max", "axis_scale"):
            value = getattr(self, name)
            if not isinstance(value, (str, bytes)) and hasattr(value, "__len__"):
                object.__setattr__(self, name, tuple(_as_float(v) for v in value))
        kinds = self.allowed_edge_kinds
        if not isinstance(kinds, (str, bytes)) and hasattr(kinds, "__iter__"):
            object.__setattr__(
                self,
                "allowed_edge_kinds",
                tuple(
                    int(k) if isinstance(k, numbers.Integral) and not isinstance(k, bool) else k
                    for k in kinds
                ),
            )
        violations = self.violations()
        if violations:
            raise InvalidCDNA(violations)

    # --- validation ---------------------------------------------------------------------------------
    def violations(self) -> list[str]:
        """Every rule this constitution breaks (empty when valid)."""
        out: list[str] = []
        types = {f.name: f.type for f in fields(self)}
        for f in fields(self):
            v = getattr(self, f.name)
            t = types[f.name]
            if t in ("float", float) and (isinstance(v, bool) or not isinstance(v, (int, float))):
                out.append(f"{f.name} must be a number, got {v!r}")
            elif t in ("float", float) and not abs(v) <= _F32_MAX:  # NaN fails too
                out.append(f"{f.name} must be finite and within float32 (|v| <= {_F32_MAX:.4g}), got {v!r}")
            elif t in ("int", int) and (isinstance(v, bool) or not isinstance(v, int)):
                out.append(f"{f.name} must be an integer, got {v!r}")
            elif t in ("bool", bool) and not isinstance(v, bool):
                out.append(f"{f.name} must be true or false, got {v!r}")
            elif t in ("str", str) and not isinstance(v, str):
                out.append(f"{f.name} must be a string, got {v!r}")
        kinds = self.allowed_edge_kinds
        if not isinstance(kinds, tuple) or not all(
            isinstance(k, int) and not isinstance(k, bool) for k in kinds
        ):
            out.append(f"allowed_edge_kinds must be a list of relation-group integers, got {kinds!r}")
        if out:  # type errors make the range checks below meaningless
            return out
        for name in ("axis_min", "axis_max", "axis_scale"):
            vec = getattr(self, name)
            if not isinstance(vec, tuple) or len(vec) != DIM:
                out.append(f"{name} must have {DIM} numbers (one per axis), got {vec!r}")
            elif not all(isinstance(x, float) and abs(x) <= _F32_MAX for x in vec):
                out.append(f"{name} must be finite float32 numbers, got {vec!r}")
        if not out:
            for i, axis in enumerate(AXES):
                if not self.axis_min[i] < self.axis_max[i]:
                    out.append(
                        f"axis_min[{axis}] = {self.axis_min[i]} must be < "
                        f"axis_max[{axis}] = {self.axis_max[i]}"
                    )
                if not self.axis_scale[i] > 0:
                    out.append(f"axis_scale[{axis}] = {self.axis_scale[i]} must be > 0")
        _positive(out, self, "neighbor_radius", "novelty_threshold", "mass_min", "radius_min", "dt")
        _positive(out, self, "max_speed", "max_force", "activation_threshold", "token_radius")
        if self.novelty_threshold > self.neighbor_radius:
            out.append(
                f"novelty_threshold = {self.novelty_threshold} must be <= neighbor_radius = "
                f"{self.neighbor_radius} (a novel signal would otherwise have familiar neighbours)"
            )
        for lo, hi in (
            ("mass_min", "mass_max"),
            ("radius_min", "radius_max"),
            ("strength_min", "strength_max"),
            ("weight_min", "weight_max"),
            ("rest_min", "rest_max"),
        ):
            if getattr(self, lo) > getattr(self, hi):
                out.append(f"{lo} = {getattr(self, lo)} must be <= {hi} = {getattr(self, hi)}")
        for name, lo, hi in (
            ("token_radius", "radius_min", "radius_max"),
            ("token_strength", "strength_min", "strength_max"),
            ("rest_length", "rest_min", "rest_max"),
        ):
            if not getattr(self, lo) <= getattr(self, name) <= getattr(self, hi):
                out.append(
                    f"{name} = {getattr(self, name)} must lie in [{lo}, {hi}] = "
                    f"[{getattr(self, lo)}, {getattr(self, hi)}]"
                )
        for name, lo, hi in (
            ("learning_rate", 0.0, 1.0),
            ("decay_rate", 0.0, 1.0),
            ("confidence_init", 0.0, 1.0),
            ("confidence_floor", 0.0, 1.0),
            ("activation_decay", 0.0, 1.0),
            ("activation_threshold", 0.0, 1.0),
            ("strength_min", 0.0, math.inf),
            ("weight_min", 0.0, math.inf),
            ("rest_min", 0.0, math.inf),
            ("temperature", 0.0, math.inf),
            ("damping", 0.0, math.inf),
            ("mass_gain", 0.0, math.inf),
            ("spring_k", 0.0, math.inf),
            ("repulsion_k", 0.0, math.inf),
            ("well_k", 0.0, math.inf),
            ("parent_k", 0.0, math.inf),
            ("skin", 0.0, math.inf),
        ):
            if not lo <= getattr(self, name) <= hi:
                out.append(f"{name} = {getattr(self, name)} must lie in [{lo}, {hi}]")
        if self.learning_rate == 0:
            out.append("learning_rate must be > 0")
        if self.confidence_floor >= self.confidence_init:
            out.append(
                f"confidence_floor = {self.confidence_floor} must be < confidence_init = "
                f"{self.confidence_init} (new hypotheses would be pruned at birth)"
            )
        for name, lo in (
            ("max_neighbors", 1),
            ("max_tokens", 1),
            ("max_edges", 0),
            ("max_memory_bytes", 1),
            ("max_degree", 1),
            ("promotion_evidence", 1),
            ("activation_depth", 0),
            ("version", 1),
        ):
            if getattr(self, name) < lo:
                out.append(f"{name} = {getattr(self, name)} must be >= {lo}")
        groups = set(EDGE_GROUPS.values())
        bad = [k for k in self.allowed_edge_kinds if isinstance(k, bool) or k not in groups]
        if bad:
            out.append(
                f"allowed_edge_kinds has unknown relation groups {bad!r}; groups are "
                + ", ".join(f"{n}=0x{g:02X}" for n, g in EDGE_GROUPS.items())
            )
        for name, lo, hi in (
            ("memory_sample", 0, 64),
            ("label_max_chars", 1, 4096),
            ("payload_max_bytes", 0, 2**31 - 1),
            ("max_payload_bytes", 0, 2**62),
        ):
            if not lo <= getattr(self, name) <= hi:
                out.append(f"{name} = {getattr(self, name)} must lie in [{lo}, {hi}]")
        for name, lo in (("max_levels", 0), ("min_field_size", 1), ("field_neighbors", 1)):
            if getattr(self, name) < lo:
                out.append(f"{name} = {getattr(self, name)} must be >= {lo}")
        if not 0 < self.field_overlap <= 1:
            out.append(f"field_overlap = {self.field_overlap} must lie in (0, 1]")
        if not 0 <= self.field_link_confidence <= 1:
            out.append(f"field_link_confidence = {self.field_link_confidence} must lie in [0, 1]")
        if self.field_persistence < 0:
            out.append(f"field_persistence = {self.field_persistence} must be >= 0")
        if self.field_persistence_rule not in PERSISTENCE_RULES:
            rule = self.field_persistence_rule
            out.append(f"field_persistence_rule = {rule!r} must be one of {PERSISTENCE_RULES}")
        if self.field_mass_max < self.mass_max:
            out.append(f"field_mass_max = {self.field_mass_max} must be >= mass_max = {self.mass_max}")
        if not isinstance(self.name, str) or not self.name:
            out.append(f"name must be a non-empty profile name, got {self.name!r}")
        return out

    # --- derived views ------------------------------------------------------------------------------
    @property
    def hash(self) -> str:
        """Content hash (sha256, 16 hex digits) of every field except ``version``."""
        payload = json.dumps(self._content(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def allows_edge_kind(self, kind: int) -> bool:
        """Whether an edge of this kind (its relation group ``kind & 0xF0``) is allowed."""
        return (int(kind) & 0xF0) in self.allowed_edge_kinds

    def _content(self) -> dict[str, Any]:
        d = self.to_dict()
        d.pop("version")
        return d

    # --- derivation ---------------------------------------------------------------------------------
    # --- the mass formulas (one place for emit, emit_batch and add_tokens) --------------------------
    def token_mass(self, priority: Any) -> Any:
        """Mass of a new token made by a signal of ``priority`` (0..255): ``0.5 + mass_gain * p / 255``
        within ``[mass_min, mass_max]``. Takes a number, a numpy array or a tensor; returns the same kind
        (float64 for numpy)."""
        mass = 0.5 + self.mass_gain * priority / 255.0
        if hasattr(mass, "clip"):
            return mass.clip(self.mass_min, self.mass_max)
        return min(max(mass, self.mass_min), self.mass_max)

    def resonance_gain(self, priority: Any) -> Any:
        """Mass a resonating token gains from a signal of ``priority``: ``learning_rate * mass_gain * p /
        255`` (the caller bounds the sum by ``mass_max``). Numbers, numpy arrays or tensors."""
        return self.learning_rate * self.mass_gain * priority / 255.0

    def replace(self, **changes: Any) -> CDNA:
        """A new, validated version with ``changes`` applied (``version`` + 1).

        Raises:
            InvalidCDNA: unknown field names, or rules the result would break (all listed).
        """
        unknown = sorted(set(changes) - _FIELD_NAMES - {"version"})
        if unknown:
            raise InvalidCDNA([f"unknown CDNA field {name!r}" for name in unknown])
        changes.setdefault("version", self.version + 1)
        return dataclasses.replace(self, **changes)

    @classmethod
    def profile(cls, name: str = "default") -> CDNA:
        """The named profile (``default``, ``explorer``, ``analyst``, ``creative``)."""
        if name == "auto":
            raise InvalidCDNA(["profile 'auto' is calibrated from data: use CDNA.calibrate(x)"])
        if name not in PROFILES:
            raise InvalidCDNA([f"unknown profile {name!r}; profiles are {sorted(PROFILES)}"])
        return cls(name=name, **PROFILES[name])

    @classmethod
    def calibrate(
        cls, x: Any, *, base: CDNA | str = "default", sample: int = 10_000, seed: int = 0, margin: float = 0.1
    ) -> CDNA:
        """The ``base`` constitution at the scale of the data ``x`` (DESIGN §5: data in any units work).

        One length unit is measured from the data: ``s``, the median distance from a point to its nearest
        other point (weighted metric of ``base``, over a random sample of at most ``sample`` rows, exact
        duplicates left out). Every length of ``base`` is multiplied by ``f = s / base.neighbor_radius``, so
        the neighbour radius becomes ``s`` and the base's ratios stay: with the default profile the novelty
        threshold is ``s / 2`` and a token's radius ``s / 4``; the field radius bounds (``radius_min``,
        ``radius_max``), rest lengths, the neighbour-list skin and ``max_speed`` follow. The box is the data's
        bounding box widened by ``margin`` of its extent on each side (at least ``s``). Grouping into
        fields is scale-free already (log densities, kNN graphs), so fields built from calibrated signals do
        not change when the data are scaled by any factor or shifted as a whole (tested).

        Args:
            x: ``[n, 8]`` numbers (numpy, torch or nested lists), ``n >= 2``.
            base: the constitution (or profile name) whose shape is kept.
            sample: rows used for ``s`` (a seeded random subset when ``n`` is larger).
            seed: seed of that subset.
            margin: share of the data's extent added to the box on each side.

        Returns:
            A new :class:`CDNA` named ``"auto"`` (``base``'s name when it is not ``"default"``:
            ``"auto:explorer"``).

        Raises:
            InvalidCDNA: ``x`` is not ``[n, 8]`` finite numbers with at least two distinct rows.
        """
        import numpy as np
        from scipy.spatial import cKDTree

        base = cls.resolve(base)
        try:
            data = np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InvalidCDNA([f"calibrate needs [n, {DIM}] numbers, got {type(x).__name__}"]) from exc
        if data.ndim != 2 or data.shape[1] != DIM or not np.isfinite(data).all():
            raise InvalidCDNA([f"calibrate needs [n, {DIM}] finite numbers, got shape {data.shape}"])
        rows = np.unique(data, axis=0)  # duplicates would make the nearest distance 0
        if rows.shape[0] < 2:
            raise InvalidCDNA(["calibrate needs at least two distinct rows"])
        if rows.shape[0] > sample:
            rows = rows[np.random.default_rng(seed).choice(rows.shape[0], sample, replace=False)]
        sqrt_s = np.sqrt(np.asarray(base.axis_scale))
        d, _ = cKDTree(rows * sqrt_s).query(rows * sqrt_s, 2)  # (m, 2): itself, then its nearest
        s = float(np.median(d[:, 1]))
        f = s / base.neighbor_radius
        lo, hi = data.min(0), data.max(0)
        pad = np.maximum(margin * (hi - lo), s)  # (8,)
        lengths = ("neighbor_radius", "novelty_threshold", "radius_min", "radius_max", "token_radius")
        lengths += ("rest_min", "rest_max", "rest_length", "skin", "max_speed")
        changes: dict[str, Any] = {name: getattr(base, name) * f for name in lengths}
        changes["axis_min"] = tuple((lo - pad).tolist())
        changes["axis_max"] = tuple((hi + pad).tolist())
        changes["name"] = "auto" if base.name == "default" else f"auto:{base.name}"
        return dataclasses.replace(base, version=1, **changes)

    @classmethod
    def resolve(cls, cdna: CDNA | str | Mapping[str, Any] | None) -> CDNA:
        """A CDNA from what a user may pass: a :class:`CDNA`, a profile name, a mapping of fields, or
        ``None`` for the default profile.

        Raises:
            InvalidCDNA: an unknown profile, unknown fields or broken rules (all listed).
            TypeError: anything else.
        """
        if cdna is None:
            return cls()
        if isinstance(cdna, CDNA):
            return cdna
        if isinstance(cdna, str):
            return cls.profile(cdna)
        if isinstance(cdna, Mapping):
            return cls.from_dict(cdna)
        raise TypeError(f"cdna must be a CDNA, a profile name or a mapping, got {type(cdna).__name__}")

    # --- (de)serialisation --------------------------------------------------------------------------
    def to_pandas(self) -> pd.DataFrame:
        """One row per field: field, value, default, changed."""
        return display.cdna_frame(self)

    def _repr_html_(self) -> str:
        return display.cdna_html(self)

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python mapping (lists for vectors), suitable for JSON and YAML."""
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = list(v) if isinstance(v, tuple) else v
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CDNA:
        """Build from a mapping; unknown keys and broken rules are all reported at once."""
        unknown = sorted(set(data) - _FIELD_NAMES - {"version"})
        if unknown:
            raise InvalidCDNA([f"unknown CDNA field {name!r}" for name in unknown])
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**kwargs)

    def to_yaml(self, path: str | Path | None = None) -> str:
        """YAML text of this constitution; also written to ``path`` when given."""
        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def from_yaml(cls, source: str | Path) -> CDNA:
        """Load from a YAML file path or YAML text."""
        text = Path(source).read_text() if _is_path(source) else str(source)
        data = yaml.safe_load(text)
        if not isinstance(data, Mapping):
            raise InvalidCDNA([f"a CDNA document must be a mapping, got {type(data).__name__}"])
        return cls.from_dict(data)

    def __repr__(self) -> str:
        changed = [
            f"{f.name}={getattr(self, f.name)!r}"
            for f in fields(self)
            if f.name not in ("name", "version") and getattr(self, f.name) != f.default
        ]
        extra = (", " + ", ".join(changed)) if changed else ""
        return f"CDNA(name={self.name!r}, version={self.version}, hash={self.hash}{extra})"


_FIELD_NAMES = {f.name for f in fields(CDNA)} - {"version"}

#: Deltas of each profile against the defaults.
PROFILES: dict[str, dict[str, Any]] = {
    "default": {},
    "explorer": {
        "neighbor_radius": 0.3,
        "novelty_threshold": 0.12,
        "max_neighbors": 24,
        "max_degree": 64,
        "learning_rate": 0.2,
        "activation_depth": 4,
        "temperature": 0.01,
    },
    "analyst": {
        "strict": True,
        "novelty_threshold": 0.05,
        "max_neighbors": 8,
        "max_degree": 16,
        "learning_rate": 0.05,
        "decay_rate": 0.005,
        "activation_depth": 2,
    },
    "creative": {
        "neighbor_radius": 0.25,
        "max_degree": 48,
        "learning_rate": 0.3,
        "decay_rate": 0.02,
        "temperature": 0.05,
        "activation_decay": 0.2,
    },
}


@dataclass
class CDNAHistory:
    """The versions an engine went through, newest last, and an audit log of every change.

    ``update`` pushes a new version; ``rollback`` pops exactly one version (the previous one becomes
    current again, same version number and hash). Version numbers are never reused: a change after a
    rollback gets a number above every number seen so far.
    """

    versions: list[CDNA] = field(default_factory=lambda: [CDNA()])
    log: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.versions:
            raise InvalidCDNA(["a CDNA history needs at least one version"])
        if not self.log:
            self.log.append(self._entry("init", self.current, {}))

    @property
    def current(self) -> CDNA:
        """The constitution in force."""
        return self.versions[-1]

    def update(self, **changes: Any) -> CDNA:
        """Push a new version with ``changes``; raises ``InvalidCDNA`` and changes nothing on bad input."""
        top = max(entry["version"] for entry in self.log)
        new = self.current.replace(version=top + 1, **changes)
        self.versions.append(new)
        self.log.append(self._entry("update", new, changes))
        return new

    def set(self, cdna: CDNA) -> CDNA:
        """Push a whole constitution (e.g. another profile) as the next version."""
        top = max(entry["version"] for entry in self.log)
        new = dataclasses.replace(cdna, version=top + 1)
        self.versions.append(new)
        self.log.append(self._entry("set", new, {"name": cdna.name}))
        return new

    def rollback(self) -> CDNA:
        """Go back exactly one version and return it.

        Raises:
            InvalidCDNA: when only the first version is left.
        """
        if len(self.versions) < 2:
            raise InvalidCDNA(["nothing to roll back: only the initial CDNA version is left"])
        dropped = self.versions.pop()
        self.log.append(self._entry("rollback", self.current, {"dropped_version": dropped.version}))
        return self.current

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (used by snapshots)."""
        return {"versions": [c.to_dict() for c in self.versions], "log": list(self.log)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CDNAHistory:
        """Inverse of :meth:`to_dict`."""
        return cls(versions=[CDNA.from_dict(v) for v in data["versions"]], log=list(data["log"]))

    @staticmethod
    def _entry(action: str, cdna: CDNA, changes: Mapping[str, Any]) -> dict[str, Any]:
        safe = {k: (list(v) if isinstance(v, tuple) else v) for k, v in changes.items()}
        return {
            "action": action,
            "version": cdna.version,
            "hash": cdna.hash,
            "changes": safe,
            "time": time.time(),
        }

    def __len__(self) -> int:
        return len(self.versions)


def _positive(out: list[str], cdna: CDNA, *names: str) -> None:
    for name in names:
        if not getattr(cdna, name) > 0:
            out.append(f"{name} = {getattr(cdna, name)} must be > 0")


def _as_float(v: Any) -> Any:
    try:
        return float(v) if not isinstance(v, bool) else v
    except (TypeError, ValueError):
        return v


def _is_path(source: str | Path) -> bool:
    if isinstance(source, Path):
        return True
    return "\n" not in source and len(source) < 4096 and Path(source).suffix in (".yaml", ".yml")
