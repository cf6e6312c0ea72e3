"""The on-disk format version of a store, and the refusal of stores written by a newer one.

Every part of a store carries the format version it was written with: ``store.json``, the ``meta`` table
of the event log and the metadata of each snapshot. This build reads every version up to
:data:`FORMAT_VERSION`; a newer one is refused with a :class:`~neurograph.errors.StoreError` that names
both versions (an older neurograph must not half-read what a newer one wrote).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from neurograph.errors import StoreError

__all__ = ["FORMAT_VERSION", "Engine", "check_format", "jsonable"]

#: A :class:`neurograph.engine.Engine`. The store sits below the engine in the layers (DESIGN §1): the
#: engine calls the store, and the store reaches the engine only through the object it is handed, so
#: ``persist`` never imports ``neurograph.engine`` (no import cycle). The alias names the role in signatures.
Engine = Any

FORMAT_VERSION = 1  # bump when a change would make older builds misread a store


def check_format(found: Any, where: str) -> int:
    """Return ``found`` as an int if this build can read it, else raise :class:`StoreError`.

    Args:
        found: the format version read from ``where``.
        where: what it was read from (a path or a description), for the message.
    """
    if isinstance(found, bool) or not isinstance(found, (int, str)) or not str(found).isdigit():
        raise StoreError(f"{where}: format_version must be a non-negative integer, got {found!r}")
    version = int(found)
    if version > FORMAT_VERSION:
        raise StoreError(
            f"{where} was written by a newer neurograph (store format version {version}); this build "
            f"reads format versions up to {FORMAT_VERSION}: upgrade neurograph to open it"
        )
    return version


def jsonable(value: Any) -> Any:
    """``json.dumps`` fallback: numpy scalars and arrays as Python values, sets and tuples as lists,
    anything else as its ``str`` (metadata travels for the record; replay never needs it)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)
