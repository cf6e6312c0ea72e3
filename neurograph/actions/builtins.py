"""The built-in actions and the default rules of an :class:`~neurograph.actions.ActionController`.

``text_response`` (hot, for text signals)
    A short reply from what the engine did: ``"I sense something new! Processing your input..."`` for a
    novel signal, ``"Understood. This triggered N internal processes."`` when it triggered N actions
    (``triggered_actions``: activated goals and actuators), ``"Acknowledged."`` otherwise. Result:
    ``{"response": text}``.
``log`` (cold)
    One line per signal on the ``neurograph.actions`` logger (INFO) and, when someone listens, a
    ``pipeline.signal.logged`` event on the bus's ``logs`` channel; a batch logs one summary line.
    Result: ``{"logged": rows}``.
``metrics`` (cold)
    Counters of the signals seen (signals, novel, triggered actions, anomaly sum, per sensor);
    ``snapshot()`` reads them, and a ``pipeline.metrics.updated`` event goes to the ``metrics`` channel
    when someone listens. Result: ``{"signals": total so far}``.

:func:`default_rules`: ``respond`` (text payload -> ``text_response``, hot), ``log`` and ``metrics``
(every signal, cold).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from neurograph.actions.registry import Action, ActionContext, BatchContext, LazyRows
from neurograph.actions.rules import Rule

__all__ = [
    "ACKNOWLEDGED",
    "NOVEL_RESPONSE",
    "TRIGGERED_RESPONSE",
    "MetricsAction",
    "builtin_actions",
    "default_rules",
    "log_action",
    "text_response",
    "trigger_counts",
]

NOVEL_RESPONSE = "I sense something new! Processing your input..."
TRIGGERED_RESPONSE = "Understood. This triggered {n} internal processes."
ACKNOWLEDGED = "Acknowledged."

_log = logging.getLogger("neurograph.actions")


def _np(values: Any) -> np.ndarray:
    return values.detach().cpu().numpy() if hasattr(values, "detach") else np.asarray(values)


def trigger_counts(results: Any) -> np.ndarray:
    """``[B]`` number of triggered actions per row of a ``BatchResult``."""
    offsets = getattr(results, "triggered_offsets", None)
    if offsets is not None:
        return np.diff(_np(offsets))
    return np.fromiter(map(len, results.triggered_actions), np.int64, len(results))


def response_for(is_novel: bool, n_triggered: int) -> str:
    """The text reply for a signal that was novel or not and triggered ``n_triggered`` actions."""
    if is_novel:
        return NOVEL_RESPONSE
    if n_triggered:
        return TRIGGERED_RESPONSE.format(n=n_triggered)
    return ACKNOWLEDGED


def text_response(ctx: ActionContext) -> dict[str, str]:
    """The built-in reply (module docstring)."""
    r = ctx.result
    return {"response": response_for(r["is_novel"], len(r["triggered_actions"]))}


def text_response_batch(bctx: BatchContext) -> LazyRows:
    """Replies for the selected rows of a batch, made vectorised."""
    rows = bctx.rows
    novel = _np(bctx.results.is_novel)[rows]  # (R,)
    n_trig = trigger_counts(bctx.results)[rows]  # (R,)
    texts = np.where(novel, NOVEL_RESPONSE, ACKNOWLEDGED).astype(object)  # (R,)
    some = np.flatnonzero(~novel & (n_trig > 0))
    texts[some] = [TRIGGERED_RESPONSE.format(n=int(n)) for n in n_trig[some]]
    return LazyRows(lambda j: {"response": texts[j]}, rows.size)


def log_action(ctx: ActionContext) -> dict[str, int]:
    """The built-in log (module docstring)."""
    s, r = ctx.signal, ctx.result
    if _log.isEnabledFor(logging.INFO):
        _log.info(
            "signal tick=%d type=%s token=%d novel=%s anomaly=%.3f",
            s.tick,
            s.event_type,
            r["token_id"],
            r["is_novel"],
            r["anomaly_score"],
        )
    bus = ctx.bus
    if bus is not None and bus.has_subscribers("logs", "pipeline.signal.logged"):
        bus.publish(
            "logs",
            "pipeline.signal.logged",
            {
                "tick": s.tick,
                "event_type": s.event_type,
                "token_id": r["token_id"],
                "is_novel": r["is_novel"],
                "anomaly_score": r["anomaly_score"],
            },
        )
    return {"logged": 1}


def log_batch(bctx: BatchContext) -> dict[str, int]:
    """One summary line for the selected rows of a batch."""
    rows = bctx.rows
    novel = int(_np(bctx.results.is_novel)[rows].sum())
    s = bctx.signals
    if _log.isEnabledFor(logging.INFO):
        _log.info(
            "batch ticks=%d..%d type=%s rows=%d novel=%d",
            s.tick0,
            s.tick0 + len(s) - 1,
            s.event_type,
            rows.size,
            novel,
        )
    bus = bctx.bus
    if bus is not None and bus.has_subscribers("logs", "pipeline.batch.logged"):
        data = {"tick0": s.tick0, "event_type": s.event_type, "rows": int(rows.size), "novel": novel}
        bus.publish("logs", "pipeline.batch.logged", data)
    return {"logged": int(rows.size)}


class MetricsAction:
    """The built-in metrics (module docstring): call it per signal, ``batch`` per batch."""

    def __init__(self) -> None:
        self.signals = self.novel = self.triggered = 0
        self.anomaly_sum = 0.0
        self.by_sensor: dict[str, int] = {}

    def __call__(self, ctx: ActionContext) -> dict[str, int]:
        r = ctx.result
        self.signals += 1
        self.novel += bool(r["is_novel"])
        self.triggered += len(r["triggered_actions"])
        self.anomaly_sum += r["anomaly_score"]
        sensor = ctx.signal.sensor
        self.by_sensor[sensor] = self.by_sensor.get(sensor, 0) + 1
        self._publish(ctx.bus)
        return {"signals": self.signals}

    def batch(self, bctx: BatchContext) -> dict[str, int]:
        rows, res = bctx.rows, bctx.results
        self.signals += int(rows.size)
        self.novel += int(_np(res.is_novel)[rows].sum())
        self.triggered += int(trigger_counts(res)[rows].sum())
        self.anomaly_sum += float(_np(res.anomaly_scores)[rows].astype(np.float64).sum())
        sensor = bctx.signals.sensor
        self.by_sensor[sensor] = self.by_sensor.get(sensor, 0) + int(rows.size)
        self._publish(bctx.bus)
        return {"signals": self.signals}

    def _publish(self, bus: Any) -> None:
        if bus is not None and bus.has_subscribers("metrics", "pipeline.metrics.updated"):
            bus.publish("metrics", "pipeline.metrics.updated", self.snapshot())

    def snapshot(self) -> dict[str, Any]:
        """Counters and rates so far."""
        n = self.signals
        return {
            "signals": n,
            "novel": self.novel,
            "novel_rate": self.novel / n if n else 0.0,
            "triggered_actions": self.triggered,
            "mean_anomaly": self.anomaly_sum / n if n else 0.0,
            "by_sensor": dict(self.by_sensor),
        }

    def __repr__(self) -> str:
        return f"MetricsAction(signals={self.signals}, novel={self.novel}, triggered={self.triggered})"


def builtin_actions() -> list[Action]:
    """Fresh built-in actions (the metrics counters start at zero)."""
    metrics = MetricsAction()
    return [
        Action("text_response", text_response, text_response_batch, "reply to a text signal"),
        Action("log", log_action, log_batch, "log the signal (neurograph.actions logger, logs channel)"),
        Action("metrics", metrics, metrics.batch, "count signals, novelty, triggers (metrics channel)"),
    ]


def _has_text(ctx: ActionContext) -> bool:
    return isinstance(ctx.signal.payload, str)


def _batch_has_text(bctx: BatchContext) -> np.ndarray:
    payloads = bctx.signals.payloads
    return np.full(len(payloads), bool(len(payloads)) and isinstance(payloads[0], str))


def default_rules() -> list[Rule]:
    """``respond`` (text -> text_response, hot), ``log`` and ``metrics`` (cold)."""
    return [
        Rule("respond", ("text_response",), _has_text, path="hot", batch_condition=_batch_has_text),
        Rule("log", ("log",), None, path="cold"),
        Rule("metrics", ("metrics",), None, path="cold"),
    ]
