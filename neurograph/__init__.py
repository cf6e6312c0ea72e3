"""neurograph: a GPU research toolkit for emergent knowledge structures.

Signals become tokens in an 8-D semantic space, are judged novel or familiar against their nearest
tokens, link up through co-activation and are bounded by a constitution (the CDNA) that a Guardian
enforces. ``import neurograph as ng`` gives the public surface below; adapters with heavy optional
dependencies (server, notebooks, W&B) are imported from their own subpackages.
"""

from __future__ import annotations

from neurograph.cdna import CDNA, CDNAHistory
from neurograph.emit.results import BatchResult, EmitResult
from neurograph.engine import Engine, SignalSystem
from neurograph.errors import (
    InvalidArgument,
    InvalidCDNA,
    InvalidQuery,
    InvalidSignal,
    NeurographError,
    OptionMismatch,
    QuotaExceeded,
    StoreError,
    UnknownToken,
)
from neurograph.events import Event, EventBus, Subscription
from neurograph.fields import StepStats
from neurograph.guardian import Guardian
from neurograph.hierarchy.view import Hierarchy
from neurograph.kinds import ENTITY_KINDS
from neurograph.space import AXES, DIM

__version__ = "0.1.0.dev0"

__all__ = [
    "AXES",
    "CDNA",
    "DIM",
    "ENTITY_KINDS",
    "BatchResult",
    "CDNAHistory",
    "EmitResult",
    "Engine",
    "Event",
    "EventBus",
    "Guardian",
    "Hierarchy",
    "InvalidArgument",
    "InvalidCDNA",
    "InvalidQuery",
    "InvalidSignal",
    "NeurographError",
    "OptionMismatch",
    "QuotaExceeded",
    "SignalSystem",
    "StepStats",
    "StoreError",
    "Subscription",
    "UnknownToken",
    "__version__",
]

_LAZY = {  # L3 adapters (DESIGN §10), imported on first use so that ``import neurograph`` stays light
    "SignalPipeline": "neurograph.pipeline",
    "Gateway": "neurograph.gateway",
    "ActionController": "neurograph.actions",
}


def __getattr__(name: str) -> object:
    """``ng.SignalPipeline``, ``ng.Gateway`` and ``ng.ActionController``, imported on first access."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'neurograph' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
