"""One signal path (DESIGN §3): what ``Engine.emit`` and ``Engine.emit_batch`` do to the state.

- :mod:`neurograph.emit.batch`: a batch of validated signals: neighbours, novelty, edge plan, the
  Guardian's growth check, apply, activation, results, as tensor work on the engine's device with host
  syncs at a few documented points. ``emit`` is a batch of one.
- :mod:`neurograph.emit.single`: the row path for one signal on the CPU; it plans through the same
  functions and gives exactly what a batch of one row gives (tested result by result, tensor by tensor).
- :mod:`neurograph.emit.novelty`: novelty with sequential semantics for a whole batch.
- :mod:`neurograph.emit.hebbian`: Hebbian edges: reinforcement, hypotheses, decay, promotion, pruning.
- :mod:`neurograph.emit.activation`: spreading activation over learned edges.
- :mod:`neurograph.emit.energy`: the change of pair energies a signal causes (``energy_delta``).
- :mod:`neurograph.emit.results`: :class:`EmitResult` and :class:`BatchResult`.
"""

from neurograph.emit.batch import EmitState, ingest_batch
from neurograph.emit.hebbian import LearningStats, apply_learning
from neurograph.emit.results import RESULT_KEYS, BatchResult, EmitResult
from neurograph.emit.single import ingest_one

__all__ = [
    "RESULT_KEYS",
    "BatchResult",
    "EmitResult",
    "EmitState",
    "LearningStats",
    "apply_learning",
    "ingest_batch",
    "ingest_one",
]
