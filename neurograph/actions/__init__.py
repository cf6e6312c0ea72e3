"""Actions (DESIGN §1, L3): what happens after the engine has processed a signal.

An :class:`ActionController` holds an :class:`ActionRegistry` of named :class:`Action` s and a list of
:class:`Rule` s (condition -> actions, hot or cold path, priority boost). For each processed signal the
hot actions are awaited and the cold ones run afterwards on one background task; ``shutdown()`` drains
them. Built-ins: ``text_response``, ``log``, ``metrics`` (:mod:`neurograph.actions.builtins`).
"""

from __future__ import annotations

from neurograph.actions.builtins import (
    ACKNOWLEDGED,
    NOVEL_RESPONSE,
    TRIGGERED_RESPONSE,
    MetricsAction,
    builtin_actions,
    default_rules,
    response_for,
)
from neurograph.actions.controller import ActionController, BatchActions, BatchRun
from neurograph.actions.registry import (
    Action,
    ActionContext,
    ActionError,
    ActionRegistry,
    BatchContext,
    LazyRows,
)
from neurograph.actions.rules import PATHS, Rule

__all__ = [
    "ACKNOWLEDGED",
    "NOVEL_RESPONSE",
    "PATHS",
    "TRIGGERED_RESPONSE",
    "Action",
    "ActionContext",
    "ActionController",
    "ActionError",
    "ActionRegistry",
    "BatchActions",
    "BatchContext",
    "BatchRun",
    "LazyRows",
    "MetricsAction",
    "Rule",
    "builtin_actions",
    "default_rules",
    "response_for",
]
