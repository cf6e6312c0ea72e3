"""The Guardian: checks every signal and every growth against the CDNA before anything changes.

Signals: ``event_type`` must be dotted lowercase segments (``signal.input.external.text.chat``, at most
128 characters); a vector must be 8 finite numbers (a batch ``[B, 8]``); ``priority`` an integer in
0..255. Out-of-box vectors are clamped into the CDNA box, or rejected when the CDNA is ``strict``.
Every rejection raises :class:`~neurograph.errors.InvalidSignal` naming the field, the row and the value,
before the engine touches its state.

Growth: before tokens or edges are added, ``check_growth`` compares the counts after the growth with
``max_tokens`` / ``max_edges``, the real tensor footprint after any capacity doubling with
``max_memory_bytes``, and, on a GPU, the bytes a reallocation needs with the free device memory. A growth
that would break a quota raises :class:`~neurograph.errors.QuotaExceeded`; nothing was allocated.

Every decision of note is published through the ``publish`` callable given at construction as a
``guardian.*`` event (``guardian.rejected``, ``guardian.clamped``, ``guardian.quota``) on the ``logs``
channel.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from neurograph.cdna import CDNA
from neurograph.errors import InvalidSignal, QuotaExceeded
from neurograph.events.taxonomy import MAX_TYPE_LENGTH, is_event_type
from neurograph.kinds import DEFAULT_KIND, ENTITY_KINDS, KIND_CODE
from neurograph.memory import encode_payload
from neurograph.space import AXES, DIM
from neurograph.state import EdgeState, TokenState, planned_bytes

__all__ = ["Guardian"]

_F32_MAX = float(np.finfo(np.float32).max)  # a vector is stored as float32: larger numbers would overflow

Publish = Callable[[str, str, Mapping[str, Any]], Any]


class Guardian:
    """Validates signals and growth against the CDNA in force.

    Args:
        publish: ``publish(channel, event_type, data)``, e.g. ``EventBus.publish``; ``None`` publishes
            nothing.
    """

    def __init__(self, publish: Publish | None = None) -> None:
        self._publish = publish
        self.rejected = 0
        self.clamped = 0
        self.quota_refusals = 0

    def __repr__(self) -> str:
        return (
            f"Guardian(rejected={self.rejected}, clamped={self.clamped}, "
            f"quota_refusals={self.quota_refusals})"
        )

    # --- signals ------------------------------------------------------------------------------------
    def check_event_type(self, event_type: Any, index: int | None = None) -> str:
        """Return ``event_type`` if well formed, else raise ``InvalidSignal(field="event_type")``."""
        if is_event_type(event_type):  # the one rule, from neurograph.events.taxonomy
            return event_type
        if not isinstance(event_type, str):
            self._reject("event_type", event_type, "must be a string", index)
        if len(event_type) > MAX_TYPE_LENGTH:
            self._reject("event_type", event_type, f"must be at most {MAX_TYPE_LENGTH} characters", index)
        else:
            self._reject(
                "event_type",
                event_type,
                "must be dotted lowercase segments like 'signal.input.external.text.chat'",
                index,
            )
        return event_type

    def check_event_types(self, event_types: str | Sequence[str], n: int) -> str | list[str]:
        """One type for the whole batch, or a list of ``n`` types (each checked)."""
        if isinstance(event_types, str):
            return self.check_event_type(event_types)
        if not isinstance(event_types, Sequence) or len(event_types) != n:
            got = len(event_types) if isinstance(event_types, Sequence) else event_types
            self._reject("event_types", got, f"must be one string or a list of {n} strings")
        for i, t in enumerate(event_types):
            self.check_event_type(t, index=i)
        return list(event_types)

    def check_vectors(self, vectors: Any, cdna: CDNA, batch: bool) -> tuple[np.ndarray, np.ndarray]:
        """Validate and clamp signal vectors.

        Args:
            vectors: 8 numbers (``batch=False``) or ``[B, 8]`` numbers (list, numpy or torch).
            cdna: the constitution in force (box, strict).
            batch: whether a batch is expected.

        Returns:
            ``(x [B, 8] float32 clamped into the box, clamped [B] bool)`` (``B = 1`` for a single vector).
        """
        single = not batch and type(vectors) is np.ndarray and vectors.shape == (DIM,)
        if single and vectors.dtype.char in "fd":
            # the common single signal: 8 floats inside the box are finite and need no clamping
            vals = vectors.tolist()
            if max(map(abs, vals)) <= _F32_MAX and all(
                lo <= v <= hi for v, lo, hi in zip(vals, cdna.axis_min, cdna.axis_max)
            ):
                return vectors.astype(np.float32).reshape(1, DIM), np.zeros(1, bool)
        field = "vectors" if batch else "vector"
        x = _to_array(vectors, field)
        if batch:
            if x.ndim != 2 or x.shape[1] != DIM:
                self._reject(field, _shape_of(vectors), f"must have shape [B, {DIM}]")
        else:
            if x.ndim != 1 or x.shape[0] != DIM:
                self._reject(field, vectors, f"must be {DIM} numbers (one per axis: {', '.join(AXES)})")
            x = x[None, :]
        finite = np.abs(x) <= _F32_MAX  # finite, and finite once stored as float32 (NaN fails too)
        if not finite.all():
            row, col = np.argwhere(~finite)[0]
            self._reject(
                field,
                x[row].tolist(),
                f"must be finite float32 numbers (|v| <= {_F32_MAX:.4g}); axis {AXES[col]} is {x[row, col]}",
                int(row) if batch else None,
            )
        x = x.astype(np.float32, copy=False)
        lo = np.asarray(cdna.axis_min, dtype=np.float32)
        hi = np.asarray(cdna.axis_max, dtype=np.float32)
        outside = (x < lo) | (x > hi)
        clamped = outside.any(1)
        if clamped.any():
            if cdna.strict:
                row, col = np.argwhere(outside)[0]
                self._reject(
                    field,
                    x[row].tolist(),
                    f"lies outside the CDNA box on axis {AXES[col]} ({x[row, col]} not in "
                    f"[{lo[col]}, {hi[col]}]) and the CDNA is strict",
                    int(row) if batch else None,
                )
            x = np.clip(x, lo, hi)
            self.clamped += int(clamped.sum())
            self._emit("guardian.clamped", {"rows": int(clamped.sum())})
        return np.ascontiguousarray(x), clamped

    def check_priorities(self, priorities: Any, n: int, batch: bool) -> np.ndarray:
        """Validate priorities: ints in 0..255; one for all rows or one per row. Returns ``[n]`` int64."""
        if type(priorities) is int and 0 <= priorities <= 255:  # the common case, checked in full
            return np.full(n, priorities, dtype=np.int64)
        field = "priorities" if batch else "priority"
        if isinstance(priorities, (int, np.integer)) and not isinstance(priorities, (bool, np.bool_)):
            p = np.full(n, int(priorities), dtype=np.int64)
        elif batch and not isinstance(priorities, (str, bytes, bool, float)):
            arr = _to_array(priorities, field, dtype=None)
            if arr.ndim != 1 or arr.shape[0] != n:
                self._reject(field, _shape_of(priorities), f"must be one int or {n} ints")
            if not np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_:
                self._reject(field, priorities, "must be integers in 0..255")
            p = arr.astype(np.int64)
        else:
            self._reject(field, priorities, "must be an integer in 0..255")
        bad = (p < 0) | (p > 255)
        if bad.any():
            row = int(np.argmax(bad))
            self._reject(field, int(p[row]), "must be an integer in 0..255", row if batch else None)
        return p

    # --- growth -------------------------------------------------------------------------------------
    def check_kinds(self, kinds: Any, n: int) -> np.ndarray:
        """Entity kind codes ``[n]`` int16 from ``None`` (``concept``), a name, a code, or one per row.

        Raises:
            InvalidSignal: an unknown name or code, or a list of the wrong length (field ``kind``/``kinds``).
        """
        if kinds is None:
            return np.full(n, DEFAULT_KIND, np.int16)
        if isinstance(kinds, (str, int, np.integer)):
            return np.full(n, self._kind_code(kinds, None), np.int16)
        seq = list(kinds)
        if len(seq) != n:
            self._reject("kinds", len(seq), f"must be one kind or {n} kinds")
        return np.array([self._kind_code(k, i) for i, k in enumerate(seq)], np.int16)

    def _kind_code(self, kind: Any, index: int | None) -> int:
        if isinstance(kind, str):
            if kind not in KIND_CODE:
                self._reject("kind", kind, f"must be one of {list(ENTITY_KINDS)}", index)
            return KIND_CODE[kind]
        if (
            isinstance(kind, (int, np.integer))
            and not isinstance(kind, bool)
            and 0 <= kind < len(ENTITY_KINDS)
        ):
            return int(kind)
        self._reject("kind", kind, f"must be an entity kind name or a code 0..{len(ENTITY_KINDS) - 1}", index)
        return 0  # unreachable: _reject raises

    # --- labels and payloads (neurograph.memory) ----------------------------------------------------
    def check_labels(self, labels: Any, n: int, cdna: CDNA, batch: bool) -> list[str | None] | None:
        """Validate labels: ``None``, one string for all rows, or ``n`` strings or ``None`` (``batch``).

        A label is a non-empty string of at most CDNA ``label_max_chars`` characters, without control
        characters (a category, a user-level type such as ``'user'``).

        Returns:
            ``n`` labels (``None`` for none), or ``None`` when no row has one.

        Raises:
            InvalidSignal: field ``label`` / ``labels`` (with the row), nothing changes.
        """
        if labels is None:
            return None
        field = "labels" if batch else "label"
        if isinstance(labels, str) or not batch:
            return [self._label(labels, field, cdna, None)] * n
        if isinstance(labels, (bytes, Mapping)) or not hasattr(labels, "__len__"):
            self._reject(field, labels, f"must be one string or a list of {n} strings or None")
        seq = labels.tolist() if hasattr(labels, "tolist") else list(labels)
        if len(seq) != n:
            self._reject(field, len(seq), f"must be one string or a list of {n} strings or None")
        try:
            distinct = list(dict.fromkeys(seq))  # labels repeat: each distinct one is checked once
        except TypeError:  # an unhashable entry (a list, a dict): not a label, refused below
            distinct = seq
        for v in distinct:
            if v is not None and not _is_label(v, cdna):
                self._label(v, field, cdna, seq.index(v))  # raises, naming the first such row
        return seq if any(v is not None for v in distinct) else None

    def _label(self, value: Any, field: str, cdna: CDNA, index: int | None) -> str:
        if not isinstance(value, str) or not value:
            self._reject(field, value, "must be a non-empty string", index)
        if len(value) > cdna.label_max_chars:
            why = f"must be at most label_max_chars = {cdna.label_max_chars} characters, got {len(value)}"
            self._reject(field, value, why, index)
        if not value.isprintable():
            self._reject(field, value, "must not hold control characters (newlines, tabs, ...)", index)
        return value

    def check_payloads(
        self, payloads: Any, n: int, cdna: CDNA, stored_bytes: int, batch: bool
    ) -> list[bytes | None] | None:
        """Validate and encode payloads (:func:`~neurograph.memory.encode_payload`): what each signal
        stood for (a text, a row id, a small JSON-able dict), ``None`` for none.

        Each encoded payload is at most CDNA ``payload_max_bytes``; the kept payloads and the new ones
        together stay within the quota ``max_payload_bytes`` (checked before anything changes, counting
        every new payload).

        Returns:
            ``n`` encoded payloads, or ``None`` when no row has one.

        Raises:
            InvalidSignal: a payload that is not JSON-able or too large (field ``payload`` /
                ``payloads``, with the row); QuotaExceeded: ``max_payload_bytes``. Nothing changes.
        """
        if payloads is None:
            return None
        field = "payloads" if batch else "payload"
        if batch:
            if isinstance(payloads, (str, bytes, Mapping)) or not hasattr(payloads, "__len__"):
                self._reject(field, payloads, f"must be a list of {n} payloads (None for none)")
            seq = payloads.tolist() if isinstance(payloads, np.ndarray) else list(payloads)
            if len(seq) != n:
                self._reject(field, len(seq), f"must be a list of {n} payloads (None for none)")
        else:
            seq = [payloads]
        out: list[bytes | None] = []
        total = 0
        limit = cdna.payload_max_bytes
        for i, value in enumerate(seq):
            if value is None:
                out.append(None)
                continue
            try:
                blob = encode_payload(value)
            except (TypeError, ValueError) as exc:
                why = f"must be a str or JSON-able (dicts with str keys, lists, numbers, None): {exc}"
                self._reject(field, _short(value), why, i if batch else None)
            if len(blob) - 1 > limit:
                why = f"must be at most payload_max_bytes = {limit} bytes encoded, got {len(blob) - 1}"
                self._reject(field, _short(value), why, i if batch else None)
            total += len(blob)
            out.append(blob)
        if stored_bytes + total > cdna.max_payload_bytes:
            self.quota_refusals += 1
            data = {"quota": "max_payload_bytes", "limit": cdna.max_payload_bytes}
            self._emit("guardian.quota", {**data, "requested": stored_bytes + total})
            raise QuotaExceeded("max_payload_bytes", cdna.max_payload_bytes, stored_bytes + total)
        return out if total else None

    # --- the state within the CDNA -----------------------------------------------------------------
    def check_widening(self, cdna: CDNA, tokens: TokenState, edges: EdgeState) -> None:
        """Refuse, before anything changes, a CDNA whose wider degree bound would reallocate the adjacency
        tables past its memory quota or the free device memory.

        Raises:
            QuotaExceeded: the reallocation would break a quota.
        """
        after, alloc = planned_bytes(tokens, edges, 0, 0, cdna.max_degree)
        if alloc:
            self._check_quotas(cdna, 0, 0, after, alloc, tokens.device)  # only the memory grows

    def conform(self, cdna: CDNA, tokens: TokenState, edges: EdgeState) -> None:
        """Clamp every stored value into the bounds of ``cdna`` and enforce its degree bound (each token
        keeps its most confident edges). Called after every CDNA change, before anything else runs."""
        t, e, c = tokens, edges, cdna
        n = t.count
        lo = torch.tensor(c.axis_min, device=t.device)
        hi = torch.tensor(c.axis_max, device=t.device)
        t.pos[:n] = torch.maximum(torch.minimum(t.pos[:n], hi), lo)
        field = t.level[:n] > 0  # fields weigh the sum of their children, bounded by field_mass_max
        upper = torch.where(field, c.field_mass_max, c.mass_max).to(t.mass.dtype)
        t.mass[:n] = torch.minimum(t.mass[:n].clamp_min(c.mass_min), upper)
        t.radius[:n].clamp_(c.radius_min, c.radius_max)
        t.strength[:n].clamp_(c.strength_min, c.strength_max)
        m = e.count
        e.weight[:m].clamp_(c.weight_min, c.weight_max)
        e.rest[:m].clamp_(c.rest_min, c.rest_max)
        e.ensure_nodes(t.capacity, c.max_degree)
        over = np.nonzero(e.gather("degree", np.arange(e.adj.shape[0])) > c.max_degree)[0]
        if over.size:  # keep each token's most confident edges
            rows = e.gather("adj", over)
            conf = np.where(rows >= 0, e.gather("confidence", np.maximum(rows, 0)), -np.inf)
            order = np.argsort(-conf, axis=1, kind="stable")
            drop = np.take_along_axis(rows, order, 1)[:, c.max_degree :]
            e.remove(drop[drop >= 0])

    # --- growth -------------------------------------------------------------------------------------
    def check_growth(
        self,
        cdna: CDNA,
        tokens: TokenState,
        edges: EdgeState,
        *,
        new_tokens: int = 0,
        new_edges: int = 0,
        removed_tokens: int = 0,
        removed_edges: int = 0,
    ) -> None:
        """Refuse a growth that would break a quota, before anything is allocated (every operation that
        grows the stores asks here: emit, emit_batch, add_tokens, the hierarchy).

        The footprint after the growth, with any capacity doubling, is planned by
        :func:`~neurograph.state.planned_bytes`.

        Args:
            cdna: the constitution in force.
            tokens, edges: the stores as they are now.
            new_tokens, new_edges: what the operation adds.
            removed_tokens, removed_edges: what it removes at the same time (a hierarchy rebuild).

        Raises:
            QuotaExceeded: ``max_tokens``, ``max_edges``, ``max_memory_bytes`` or, on CUDA, the free device
                memory would be exceeded (nothing changed).
        """
        after, alloc = planned_bytes(tokens, edges, new_tokens, new_edges, cdna.max_degree)
        self._check_quotas(
            cdna,
            tokens.n_alive + new_tokens - removed_tokens,
            edges.n_alive + new_edges - removed_edges,
            after,
            alloc,
            tokens.device,
        )

    def _check_quotas(
        self,
        cdna: CDNA,
        tokens_after: int,
        edges_after: int,
        bytes_after: int,
        alloc_bytes: int,
        device: torch.device,
    ) -> None:
        checks: list[tuple[str, float, float]] = [
            ("max_tokens", cdna.max_tokens, tokens_after),
            ("max_edges", cdna.max_edges, edges_after),
            ("max_memory_bytes", cdna.max_memory_bytes, bytes_after),
        ]
        if alloc_bytes and device.type == "cuda":
            free, _total = torch.cuda.mem_get_info(device)
            checks.append(("device_memory", free, alloc_bytes))
        for quota, limit, requested in checks:
            if requested > limit:
                self.quota_refusals += 1
                self._emit("guardian.quota", {"quota": quota, "limit": limit, "requested": requested})
                raise QuotaExceeded(quota, limit, requested)

    # --- internals ----------------------------------------------------------------------------------
    def _reject(self, field: str, value: Any, reason: str, index: int | None = None) -> None:
        self.rejected += 1
        err = InvalidSignal(field, value, reason, index)
        self._emit("guardian.rejected", {"field": field, "index": index, "reason": str(err)})
        raise err

    def _emit(self, event_type: str, data: Mapping[str, Any]) -> None:
        if self._publish is not None:
            self._publish("logs", event_type, data)


def _is_label(value: Any, cdna: CDNA) -> bool:
    """Whether ``value`` passes :meth:`Guardian._label` (which raises, naming the rule it breaks)."""
    return isinstance(value, str) and 0 < len(value) <= cdna.label_max_chars and value.isprintable()


def _short(value: Any) -> Any:
    """A value for an error message: long reprs cut (a refused payload may be large)."""
    text = repr(value)
    return value if len(text) <= 80 else text[:77] + "..."


def _to_array(values: Any, field: str, dtype: Any = np.float64) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    if isinstance(values, (str, bytes)):
        raise InvalidSignal(field, values, "must be numbers, not text")
    try:
        arr = np.asarray(values) if dtype is None else np.asarray(values, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise InvalidSignal(field, values, f"must be numbers ({exc})") from None
    if arr.dtype == object:
        raise InvalidSignal(field, values, "must be a regular array of numbers")
    return arr


def _shape_of(values: Any) -> Any:
    shape = getattr(values, "shape", None)
    if shape is not None:
        return tuple(shape)
    try:
        return np.asarray(values, dtype=object).shape
    except (TypeError, ValueError):
        return type(values).__name__
