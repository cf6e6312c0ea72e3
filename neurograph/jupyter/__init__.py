"""neurograph in Jupyter: ``%neurograph`` magics, rich tables, a live Dashboard, graph drawings.

``%load_ext neurograph.jupyter`` registers the magics (:mod:`neurograph.jupyter.magics`) and the HTML
tables of the result objects (:mod:`neurograph.jupyter.display`). ``Dashboard(engine)``
(:mod:`neurograph.jupyter.dashboard`) is a live panel updated from the kernel's asyncio loop;
``draw_graph(engine_or_hierarchy, layout=...)`` (:mod:`neurograph.jupyter.graph`) draws tokens and edges
with a networkx layout. Importing this package is light: IPython, ipywidgets and plotly are imported by
the submodules, on first use. See ``docs/jupyter.md`` and ``notebooks/tutorial.ipynb``.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "Dashboard",
    "NeurographMagics",
    "draw_graph",
    "load_ipython_extension",
    "unload_ipython_extension",
]

_LAZY = {
    "Dashboard": "neurograph.jupyter.dashboard",
    "draw_graph": "neurograph.jupyter.graph",
    "NeurographMagics": "neurograph.jupyter.magics",
}


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext neurograph.jupyter``: the magics, the HTML tables, the after-cell redraw hook."""
    from neurograph.jupyter import display
    from neurograph.jupyter.magics import NeurographMagics

    magics = NeurographMagics(ipython)
    ipython.register_magics(magics)
    display.register(ipython)
    ipython.events.register("post_run_cell", _after_cell(magics))


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext neurograph.jupyter``: close the magics' subscriptions, drop the HTML tables."""
    from neurograph.jupyter import display

    magics = ipython.magics_manager.registry.get("NeurographMagics")
    if magics is not None:
        magics.close()
        for callback in list(ipython.events.callbacks["post_run_cell"]):
            if getattr(callback, "magics", None) is magics:
                ipython.events.unregister("post_run_cell", callback)
    display.unregister(ipython)


def _after_cell(magics: Any) -> Any:
    def after_cell(result: Any) -> None:
        magics.flush_pending()

    after_cell.magics = magics  # type: ignore[attr-defined]
    return after_cell


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'neurograph.jupyter' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
