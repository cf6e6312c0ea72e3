"""Results of ``emit`` and ``emit_batch``.

:class:`EmitResult` is what one signal did, readable as attributes and as a mapping (``r.token_id`` and
``r["token_id"]``), so code written for the seed project's dict results keeps working. Its keys:

``token_id``            the new token (novel) or the resonating token (familiar)
``is_novel``            no token lay within the novelty threshold
``neighbors``           up to ``max_neighbors`` nearest tokens within the radius, nearest first; each a
                        dict ``token_id, distance, resonance, token_type, layer_affinity``
``anomaly_score``       1.0 with no neighbours, else ``min(mean distance / radius, 1)``
``resonance``           resonance ``exp(-d / radius)`` of the nearest neighbour (0.0 without neighbours)
``energy_delta``        change of field potential energy caused by the signal
``activation_spread``   number of tokens reached by spreading activation from the result token
``triggered_actions``   ids of activated tokens of kind actuator or goal
``processing_time_us``  wall time of the call (for a batch row: the batch's time divided by its rows)

:class:`BatchResult` holds the same per row as tensors (``b.token_ids``, ``b.is_novel``,
``b.neighbor_ids``, ``b.neighbor_distances``, ``b.anomaly_scores``, ...); ``b[i]`` is row ``i`` as an
:class:`EmitResult`. The batch path leaves its tensors on the engine's device
(``b.device_tensors``); the attributes and ``b[i]`` read host copies, made once (the API edge).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch

from neurograph import display
from neurograph.kinds import ENTITY_KINDS
from neurograph.space import AXES

__all__ = ["RESULT_KEYS", "BatchResult", "EmitResult"]

RESULT_KEYS = (
    "token_id",
    "is_novel",
    "neighbors",
    "anomaly_score",
    "resonance",
    "energy_delta",
    "activation_spread",
    "triggered_actions",
    "processing_time_us",
)


class EmitResult(Mapping[str, Any]):
    """What one signal did; attributes and read-only mapping access over :data:`RESULT_KEYS`."""

    __slots__ = RESULT_KEYS

    def __init__(self, **values: Any) -> None:
        for key in RESULT_KEYS:
            object.__setattr__(self, key, values[key])

    def __getitem__(self, key: str) -> Any:
        if key not in RESULT_KEYS:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(RESULT_KEYS)

    def __len__(self) -> int:
        return len(RESULT_KEYS)

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError("EmitResult is read-only")

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (JSON-safe)."""
        return {key: getattr(self, key) for key in RESULT_KEYS}

    def to_pandas(self) -> pd.DataFrame:
        """One row: token_id, is_novel, n_neighbors, nearest_distance, anomaly_score, resonance,
        energy_delta, activation_spread, triggered_actions, processing_time_us."""
        return display.emit_result_frame(self)

    def _repr_html_(self) -> str:
        return display.emit_result_html(self)

    def __repr__(self) -> str:
        return (
            f"EmitResult(token_id={self.token_id}, is_novel={self.is_novel}, "
            f"neighbors={len(self.neighbors)}, anomaly_score={self.anomaly_score:.3f}, "
            f"activation_spread={self.activation_spread})"
        )


_DEVICE_FIELDS = (
    "token_ids",
    "is_novel",
    "neighbor_ids",
    "neighbor_distances",
    "neighbor_resonance",
    "anomaly_scores",
    "energy_deltas",
    "activation_spread",
    "triggered_ids",
    "triggered_offsets",
    "neighbor_kinds",
    "neighbor_affinity",
)
_NUMPY_FIELDS = ("triggered_ids", "triggered_offsets", "neighbor_kinds", "neighbor_affinity")


class BatchResult:
    """What a batch of ``B`` signals did, row by row.

    The batch path builds it from tensors on the engine's device without a host sync
    (:attr:`device_tensors`). The attributes below are host copies, made for all of them at once on the
    first read (one sync: the API edge) and kept; on a CPU engine they are the very same tensors.

    Shapes:
        token_ids ``[B]`` int64, is_novel ``[B]`` bool, neighbor_ids ``[B, k]`` int64 (-1 padded),
        neighbor_distances ``[B, k]`` float32 (inf padded), neighbor_resonance ``[B, k]`` float32,
        anomaly_scores ``[B]`` float32, energy_deltas ``[B]`` float32, activation_spread ``[B]`` int64
        (torch tensors); triggered_ids ``[T]`` int64 with triggered_offsets ``[B + 1]``: row ``i``
        triggered ``triggered_ids[offsets[i]:offsets[i + 1]]`` (see :attr:`triggered_actions`);
        neighbor_kinds ``[B, k]`` entity kind codes and neighbor_affinity ``[B, k]`` axis index of each
        neighbour's largest ``|component|`` (numpy arrays). On the device ``triggered_ids`` may be
        longer than ``T`` (the entries past ``offsets[B]`` are unused).
    """

    token_ids: torch.Tensor
    is_novel: torch.Tensor
    neighbor_ids: torch.Tensor
    neighbor_distances: torch.Tensor
    neighbor_resonance: torch.Tensor
    anomaly_scores: torch.Tensor
    energy_deltas: torch.Tensor
    activation_spread: torch.Tensor
    triggered_ids: np.ndarray
    triggered_offsets: np.ndarray
    neighbor_kinds: np.ndarray
    neighbor_affinity: np.ndarray

    def __init__(self, *, processing_time_us: float = 0.0, **tensors: torch.Tensor) -> None:
        missing = set(_DEVICE_FIELDS) - set(tensors)
        if missing:
            raise TypeError(f"BatchResult needs {sorted(missing)}")
        self.device_tensors: dict[str, torch.Tensor] = {k: tensors[k] for k in _DEVICE_FIELDS}
        self.processing_time_us = processing_time_us
        self._host: dict[str, Any] | None = None
        self._lists: dict[str, list[Any]] | None = None  # host fields as Python lists (for rows)

    def __getattr__(self, name: str) -> Any:  # the host copies of the per-row fields
        if name in _DEVICE_FIELDS:
            return self.host()[name]
        raise AttributeError(name)

    def host(self) -> dict[str, Any]:
        """Every field on the host (copied once: the first call syncs with the device)."""
        if self._host is None:
            dev = self.device_tensors["token_ids"]
            if dev.device.type == "cpu":
                host = dict(self.device_tensors)
            else:
                host = {k: t.to("cpu", non_blocking=True) for k, t in self.device_tensors.items()}
                torch.cuda.current_stream(dev.device).synchronize()  # one sync for all of them
            for name in _NUMPY_FIELDS:
                host[name] = host[name].numpy()
            host["triggered_ids"] = host["triggered_ids"][: int(host["triggered_offsets"][-1])]
            self._host = host
        return self._host

    @property
    def device(self) -> torch.device:
        """Where :attr:`device_tensors` live (the engine's device)."""
        return self.device_tensors["token_ids"].device

    def __len__(self) -> int:
        return int(self.device_tensors["token_ids"].shape[0])

    def __iter__(self) -> Iterator[EmitResult]:
        return (self[i] for i in range(len(self)))

    def __getitem__(self, i: int) -> EmitResult:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"row {i} out of range for a batch of {n}")
        i %= n
        if self._lists is None:  # every field to Python lists once: rows are then list lookups
            h = self.host()
            self._lists = {k: v.tolist() for k, v in h.items()}
        h = self._lists
        dist = h["neighbor_distances"][i]
        res = h["neighbor_resonance"][i]
        kinds = h["neighbor_kinds"][i]
        aff = h["neighbor_affinity"][i]
        off = h["triggered_offsets"]
        neighbors = [
            {
                "token_id": tid,
                "distance": dist[j],
                "resonance": res[j],
                "token_type": ENTITY_KINDS[kinds[j]],
                "layer_affinity": AXES[aff[j]],
            }
            for j, tid in enumerate(h["neighbor_ids"][i])
            if tid >= 0
        ]
        return EmitResult(
            token_id=h["token_ids"][i],
            is_novel=h["is_novel"][i],
            neighbors=neighbors,
            anomaly_score=h["anomaly_scores"][i],
            resonance=neighbors[0]["resonance"] if neighbors else 0.0,
            energy_delta=h["energy_deltas"][i],
            activation_spread=h["activation_spread"][i],
            triggered_actions=h["triggered_ids"][off[i] : off[i + 1]],
            processing_time_us=self.processing_time_us / max(n, 1),
        )

    @property
    def triggered_actions(self) -> list[list[int]]:
        """Per row, the ids of activated tokens of kind actuator or goal."""
        ids = self.triggered_ids.tolist()
        off = self.triggered_offsets.tolist()
        return [ids[off[i] : off[i + 1]] for i in range(len(self))]

    @property
    def novel_rate(self) -> float:
        """Fraction of novel rows."""
        return float(self.is_novel.float().mean()) if len(self) else 0.0

    def to_pandas(self) -> pd.DataFrame:
        """One row per signal: token_id, is_novel, n_neighbors, nearest_distance, anomaly_score, ..."""
        has = self.neighbor_ids >= 0
        return pd.DataFrame(
            {
                "token_id": self.token_ids.numpy(),
                "is_novel": self.is_novel.numpy(),
                "n_neighbors": has.sum(1).numpy(),
                "nearest_distance": self.neighbor_distances[:, 0].numpy()
                if self.neighbor_ids.shape[1]
                else np.full(len(self), np.inf),
                "anomaly_score": self.anomaly_scores.numpy(),
                "energy_delta": self.energy_deltas.numpy(),
                "activation_spread": self.activation_spread.numpy(),
            }
        )

    def _repr_html_(self) -> str:
        return display.batch_result_html(self)

    def __repr__(self) -> str:
        return (
            f"BatchResult(rows={len(self)}, novel={int(self.is_novel.sum())}, "
            f"processing_time_us={self.processing_time_us:.0f})"
        )
