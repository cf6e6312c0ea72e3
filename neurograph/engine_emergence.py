"""The engine's emergence operations: force-field dynamics, the hierarchy of fields, edge upkeep.

:class:`EmergenceOps` is part of :class:`~neurograph.engine.Engine` (a mixin kept in its own module so
that each concept reads in one sitting); the work happens in :mod:`neurograph.fields`,
:mod:`neurograph.hierarchy` and :mod:`neurograph.emit.hebbian`. Each operation is logged to the engine's
store (when it has one) and replayed when the store is opened.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from neurograph.emit.hebbian import LearningStats, apply_learning
from neurograph.errors import QuotaExceeded
from neurograph.fields import StepStats
from neurograph.hierarchy import Hierarchy, apply_hierarchy, plan_hierarchy
from neurograph.persist import register_op, register_state
from neurograph.state import planned_bytes

if TYPE_CHECKING:
    from neurograph.engine import Engine

__all__ = ["EmergenceOps"]


class EmergenceOps:
    """Dynamics (``step``, ``run``), the hierarchy (``hierarchy``, ``hierarchy_every``), ``learn``."""

    @property
    def steps(self) -> int:
        """Dynamics steps integrated so far."""
        return self.dynamics.steps

    def step(self, n: int = 1) -> StepStats:
        """Move the tokens ``n`` steps through the force field (DESIGN §4, ``docs/dynamics.md``).

        Springs along learned edges, soft-sphere repulsion and field wells between tokens of a level, the
        pull toward parent fields; damped, mass-aware velocity Verlet with Langevin noise at the CDNA's
        temperature, speed and force capped, positions kept in the box. Publishes one
        ``dynamics.stepped`` event on the ``metrics`` channel. Prefer ``step(n)`` with ``n >> 1`` (or
        :meth:`run`) to many ``step()``: each call ends with one extra force evaluation for the energies.

        Returns:
            A :class:`~neurograph.fields.StepStats` (energies, largest displacement, rebuilds, wall time).

        Raises:
            ValueError: ``n`` is not an int ``>= 0`` (nothing changes).
        """
        return self._dynamics(n, max(n, 1) if isinstance(n, int) else n, None, progress=False)

    def run(
        self, steps: int, every: int = 100, callback: Callable[[StepStats], Any] | None = None
    ) -> StepStats:
        """Run ``steps`` dynamics steps with a :class:`~neurograph.fields.StepStats` every ``every`` steps,
        published as ``dynamics.stepped`` on ``metrics`` (one host sync each) and passed to ``callback``;
        a ``tqdm.auto`` progress bar shows on a terminal (``TQDM_DISABLE=1`` silences it).

        Returns:
            The summary of the whole run: energies at the end, the largest displacement from the start,
            all steps, rebuilds and the wall time.

        Raises:
            ValueError: ``steps`` or ``every`` malformed (nothing changes).
        """
        return self._dynamics(steps, every, callback, progress=True)

    def _dynamics(
        self, steps: int, every: Any, callback: Callable[[StepStats], Any] | None, progress: bool
    ) -> StepStats:
        def on_stats(stats: StepStats) -> None:
            self.index.invalidate()  # positions moved
            count = self.dynamics.steps
            self.bus.publish("metrics", "dynamics.stepped", lambda: {**stats.to_dict(), "step": count})
            self._hierarchy_after_steps(stats.steps)
            if callback is not None:
                callback(stats)

        t, e = self.token_state, self.edge_state
        kwargs = {"every": every, "on_stats": on_stats, "progress": progress}
        stats = self.dynamics.run(t, e, self.cdna, steps, self.generator, **kwargs)
        self._record("step", {"n": steps, "every": every})
        return stats

    # snapshots carry the step counter (the neighbour list is rebuilt); the log re-runs the steps
    register_state("dynamics.steps", lambda e: e.dynamics.steps, lambda e, v: setattr(e.dynamics, "steps", v))

    @staticmethod
    @register_op("step")
    def _replay_step(engine: Engine, rec: Any) -> int:
        engine.run(rec.payload["n"], every=rec.payload["every"])
        return 0

    # --- the hierarchy of fields and edge upkeep -----------------------------------------------------
    def hierarchy(self, rebuild: bool = True) -> Hierarchy:
        """The emergent hierarchy (DESIGN §5): fields of tokens, fields of fields.

        With ``rebuild`` the fields are found afresh from the current positions, masses and links (the
        method: :mod:`neurograph.hierarchy` and :mod:`neurograph.hierarchy.basins`); fields that persist keep their
        ids, and ``field.born``, ``field.died``, ``field.merged`` and ``field.split`` are published on the
        ``status`` channel. Without it, the fields as last built.

        Returns:
            A :class:`~neurograph.hierarchy.view.Hierarchy` snapshot (levels as PyG ``Data``, ``parent(id)``,
            ``children(id)``, ``path(id)``, ``fields(level)``, ``to_networkx()``, ``to_pandas()``).

        Raises:
            QuotaExceeded: the new field tokens or ``part_of`` edges would break a quota (nothing changes).
        """
        if rebuild:
            self._rebuild_hierarchy()
            self._record("hierarchy")
        return Hierarchy.from_state(self.token_state, self.edge_state, self.tick)

    def learn(self, failed: Any = None) -> LearningStats:
        """Upkeep of the learned edges now (:func:`~neurograph.emit.hebbian.apply_learning`): hypotheses decay
        over the engine ticks since their last reinforcement or the last ``learn()``, enough evidence
        promotes them, edges below ``confidence_floor`` are pruned.

        Args:
            failed: ``[P, 2]`` token id pairs whose edge predicted wrongly (confidence lowered by half the
                learning rate first); pairs without an edge are ignored.

        Returns:
            A :class:`~neurograph.emit.hebbian.LearningStats`; also published as ``learning.applied`` on
            ``metrics``.
        """
        edge_slots = None
        if failed is not None:
            pairs = np.asarray(failed, dtype=np.int64).reshape(-1, 2)
            slots = self.token_state.slots_of(pairs)  # (P, 2)
            ok = (slots >= 0).all(1)
            edge_slots = self.edge_state.find(slots[ok, 0], slots[ok, 1])
            edge_slots = edge_slots[edge_slots >= 0]
        stats = apply_learning(self.edge_state, self.cdna, self.tick, self._learned_at, edge_slots)
        self._learned_at = self.tick
        self._record("learn", {"failed": [] if failed is None else np.asarray(failed).tolist()})
        self.bus.publish("metrics", "learning.applied", stats.to_dict)
        return stats

    @property
    def hierarchy_every(self) -> int | None:
        """Rebuild the hierarchy every this many dynamics steps (``None``: only on :meth:`hierarchy`)."""
        return self._hierarchy_every

    @hierarchy_every.setter
    def hierarchy_every(self, every: int | None) -> None:
        if every is not None and (isinstance(every, bool) or not isinstance(every, int) or every < 1):
            raise ValueError(f"hierarchy_every must be None or an int >= 1, got {every!r}")
        self._hierarchy_every = every

    def _rebuild_hierarchy(self) -> None:
        """Plan a rebuild, check its growth with the Guardian, apply it, publish the lifecycle events."""
        cdna, t, e = self.cdna, self.token_state, self.edge_state
        plan = plan_hierarchy(t, e, cdna)
        after, alloc = planned_bytes(t, e, plan.n_new_tokens, plan.n_new_edges, cdna.max_degree)
        self.guardian.check_growth(
            cdna,
            tokens_after=t.n_alive + plan.n_new_tokens - plan.kill.size,
            edges_after=e.n_alive + plan.n_new_edges - plan.edge_remove.size,
            bytes_after=after,
            alloc_bytes=alloc,
            device=self.device,
        )
        for event_type, data in apply_hierarchy(plan, t, e, cdna, self.tick):
            self.bus.publish("status", event_type, data)
        self._hierarchy_steps = 0

    def _hierarchy_after_steps(self, n: int) -> None:
        """Count ``n`` dynamics steps and rebuild when ``hierarchy_every`` have passed (call from ``step``;
        not logged separately: replaying the steps rebuilds again). A rebuild refused by a quota is skipped
        (the Guardian published ``guardian.quota``); the dynamics go on and the next period tries again."""
        self._hierarchy_steps += int(n)
        if self._hierarchy_every is not None and self._hierarchy_steps >= self._hierarchy_every:
            try:
                self._rebuild_hierarchy()
            except QuotaExceeded:
                self._hierarchy_steps = 0

    # snapshots carry the upkeep clock and the steps since the last rebuild; the log replays the operations
    register_state("_learned_at")
    register_state("_hierarchy_steps")

    @staticmethod
    @register_op("hierarchy")
    def _replay_hierarchy(engine: Engine, rec: Any) -> int:
        engine.hierarchy()
        return 0

    @staticmethod
    @register_op("learn")
    def _replay_learn(engine: Engine, rec: Any) -> int:
        failed = rec.payload.get("failed") or None
        engine.learn(failed)
        return 0
