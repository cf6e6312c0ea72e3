"""HTML renderers of the result objects, registered with IPython's display formatter.

The renderers live in :mod:`neurograph.display` (no IPython there, so the core classes delegate their
``_repr_html_`` to it); :func:`register` adds them to a shell's ``text/html`` formatter by type, so a
cell ending in an ``EmitResult``, ``BatchResult``, ``StepStats``, ``CDNA`` or ``Hierarchy`` shows a table
once ``%load_ext neurograph.jupyter`` ran, whatever the class itself defines.
"""

from __future__ import annotations

from typing import Any

from neurograph.cdna import CDNA
from neurograph.display import (
    Status,
    batch_result_html,
    cdna_html,
    emit_result_html,
    frame_html,
    hierarchy_html,
    status_html,
    step_stats_html,
)
from neurograph.emit.results import BatchResult, EmitResult
from neurograph.fields import StepStats
from neurograph.hierarchy.view import Hierarchy

__all__ = ["RENDERERS", "Status", "frame_html", "register", "status_html", "unregister"]

RENDERERS: dict[type, Any] = {
    EmitResult: emit_result_html,
    BatchResult: batch_result_html,
    StepStats: step_stats_html,
    CDNA: cdna_html,
    Hierarchy: hierarchy_html,
}


def register(shell: Any) -> None:
    """Show the result objects as HTML tables in ``shell`` (an IPython ``InteractiveShell``)."""
    html = shell.display_formatter.formatters["text/html"]
    for cls, fn in RENDERERS.items():
        html.for_type(cls, fn)


def unregister(shell: Any) -> None:
    """Undo :func:`register`."""
    html = shell.display_formatter.formatters["text/html"]
    for cls in RENDERERS:
        html.type_printers.pop(cls, None)
