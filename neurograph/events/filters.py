"""Filters: MongoDB-style dicts over events, compiled once at subscription.

MongoDB-style dicts over ``{"channel", "event_type", "timestamp", "data": {...}}``. Keys are
dotted fields (``"data.is_novel"``, ``"data.neighbors.0.token_id"``: digits index lists) or ``$and``,
``$or`` (lists of filters), ``$not`` (a filter), all ANDed. A field maps to a value (equality) or ANDed
operators: ``$eq $ne $gt $gte $lt $lte $in $nin``; ``$contains`` (substring of a string, member of a
list/tuple/set, key of a mapping); ``$regex`` (:func:`re.search`); ``$wildcard`` (a dot-aware pattern
when it is one, else :func:`fnmatch.fnmatchcase`: ``*``, ``?``, ``[...]``); ``$not`` of operators. A
filter is compiled at subscription; unknown operators and fields raise ``InvalidQuery`` naming them. Keys
under ``data.`` cannot be known in advance: a **condition on a missing field is false** whatever its
operator (``$ne``, ``$nin`` and a field's ``$not`` too, unlike MongoDB; a top-level ``$not`` selects the
events lacking a field), as is a comparison of incomparable values (``"a" > 1``): no filter raises.
"""

from __future__ import annotations

import contextlib
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from functools import partial
from types import MappingProxyType
from typing import Any

from neurograph.errors import InvalidQuery
from neurograph.events.taxonomy import FIELDS, Event, check_name, pattern_fn

__all__ = ["Filter", "Spec", "compile_filter"]

Spec = str | Mapping[str, Any]  # a pattern or a filter dict
_EMPTY: Mapping[str, Any] = MappingProxyType({})
_MISSING = object()  # the value of an absent field


def _always(_: Any, *__: Any) -> bool:
    return True


def _prepare(op: str, ref: Any) -> Any:
    """Checks and pre-compiles the operand of an operator, once, at subscription."""
    if op in ("$in", "$nin"):
        if isinstance(ref, (str, bytes, Mapping)) or not isinstance(ref, Iterable):
            raise InvalidQuery(f"operator {op} expects a list of values, got {ref!r}")
        return list(ref)
    if op == "$regex":
        try:
            return ref if isinstance(ref, re.Pattern) else re.compile(ref)
        except (re.error, TypeError) as exc:
            raise InvalidQuery(f"operator $regex: invalid regular expression {ref!r} ({exc})") from None
    if op == "$wildcard":
        if not isinstance(ref, str):
            raise InvalidQuery(f"operator $wildcard expects a string pattern, got {ref!r}")
        with contextlib.suppress(InvalidQuery):
            return pattern_fn(check_name(ref, pattern=True))  # a dot-aware type pattern
        return partial(fnmatchcase, pat=ref)  # a plain glob on any other string
    return ref


def _contains(value: Any, ref: Any) -> bool:
    if isinstance(value, str):
        return isinstance(ref, str) and ref in value
    return isinstance(value, (list, tuple, set, frozenset, Mapping)) and ref in value


_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {  # name -> test(value, prepared operand)
    "$eq": operator.eq,
    "$ne": operator.ne,
    "$gt": operator.gt,
    "$gte": operator.ge,
    "$lt": operator.lt,
    "$lte": operator.le,
    "$in": lambda value, items: value in items,
    "$nin": lambda value, items: value not in items,
    "$contains": _contains,
    "$regex": lambda value, rx: isinstance(value, str) and rx.search(value) is not None,
    "$wildcard": lambda value, match_fn: isinstance(value, str) and match_fn(value),
}


def _test(test_fn: Callable[[Any, Any], Any], ref: Any, value: Any) -> bool:
    try:
        return bool(test_fn(value, ref))
    except Exception:  # incomparable types, arrays, odd objects: no match, never raise
        return False


def _child(value: Any, key: str) -> Any:
    try:
        if isinstance(value, Mapping):
            return value.get(key, _MISSING)
        return value[int(key)] if key.lstrip("-").isdigit() else value[key]
    except Exception:
        return _MISSING


def _getter(name: Any) -> Callable[[Event], Any]:
    head, _, rest = name.partition(".") if isinstance(name, str) else ("", "", "")
    keys = rest.split(".") if rest else []
    if head not in FIELDS or (keys and head != "data") or "" in keys:
        raise InvalidQuery(f"unknown field {name!r}: fields are {', '.join(FIELDS)} and data.<key>[.<key>]")

    def get(event: Event) -> Any:
        value = getattr(event, head)
        for key in keys:
            if (value := _child(value, key)) is _MISSING:
                break
        return value

    return get


def _all(preds: list[Callable[[Any], bool]]) -> Callable[[Any], bool]:
    return preds[0] if len(preds) == 1 else lambda x: all(pred(x) for pred in preds)


def _condition(spec: Any, name: str) -> Callable[[Any], bool]:
    """The test of one field's value: a bare value (equality) or a dict of ANDed operators."""
    if not (isinstance(spec, Mapping) and any(isinstance(k, str) and k.startswith("$") for k in spec)):
        return partial(_test, operator.eq, spec)
    tests = []
    for op, ref in spec.items():
        if op == "$not":
            inner = _condition(ref, name)
            tests.append(lambda value, inner=inner: not inner(value))
        elif op in _OPERATORS:
            tests.append(partial(_test, _OPERATORS[op], _prepare(op, ref)))
        else:
            known = " ".join([*_OPERATORS, "$not"])
            raise InvalidQuery(f"unknown operator {op!r} on field {name!r}; operators are {known}")
    return _all(tests)


def _compile(spec: Any) -> Callable[[Event], bool]:
    if not isinstance(spec, Mapping):
        raise InvalidQuery(f"a filter must be a dict, got {spec!r}")
    preds: list[Callable[[Event], bool]] = []
    for key, value in spec.items():
        if key in ("$and", "$or"):
            if isinstance(value, (str, Mapping)) or not isinstance(value, Iterable) or not value:
                raise InvalidQuery(f"{key} expects a non-empty list of filters, got {value!r}")
            subs, combine = [_compile(sub) for sub in value], all if key == "$and" else any
            preds.append(lambda event, subs=subs, combine=combine: combine(s(event) for s in subs))
        elif key == "$not":
            inner = _compile(value)
            preds.append(lambda event, inner=inner: not inner(event))
        elif isinstance(key, str) and key.startswith("$"):
            raise InvalidQuery(f"unknown operator {key!r} at the top of a filter; expected $and $or $not")
        else:
            get, test = _getter(key), _condition(value, key)
            preds.append(lambda event, get=get, test=test: (v := get(event)) is not _MISSING and test(v))
    return _all(preds) if preds else _always


@dataclass(frozen=True, slots=True)
class Filter:
    """A compiled spec, ``filter(event) -> bool``; ``route(channel, event_type)`` is the part of it
    decided by those two fields alone (all of a pattern; a dict's top-level conditions on them)."""

    spec: Spec
    match_fn: Callable[[Event], bool] = field(repr=False)
    route: Callable[[str, str], bool] = field(repr=False)

    def __call__(self, event: Event) -> bool:
        return self.match_fn(event)


def compile_filter(spec: Spec = "*") -> Filter:
    """Compiles a pattern or filter dict (module docstring) into a predicate; raises ``InvalidQuery``."""
    if isinstance(spec, str):
        type_fn = pattern_fn(check_name(spec, pattern=True))
        return Filter(spec, lambda event: type_fn(event.event_type), lambda _, kind: type_fn(kind))
    match_fn = _compile(spec)  # first: it checks that spec is a dict
    route_fn = _compile({k: v for k, v in spec.items() if k in ("channel", "event_type")})
    return Filter(spec, match_fn, lambda channel, kind: route_fn(Event(channel, kind, 0.0, _EMPTY)))
