"""Fused compute kernels, each beside its eager torch reference (the oracle the tests compare against).

- :func:`knn_reference` / :func:`knn_triton`: exact k nearest neighbours in the weighted 8-D metric.
- :func:`force_step_triton`: one fused force-field step (its reference: the dense gather step of
  :mod:`neurograph.fields`), reading a :class:`StepInputs`, the tensors of one step.

triton is optional and imported only when a Triton kernel is launched; :func:`triton_available` says
whether one can run here.
"""

from neurograph.kernels.force_step import force_step_triton
from neurograph.kernels.knn import knn_reference, knn_triton, triton_available
from neurograph.kernels.step_inputs import StepInputs

__all__ = ["StepInputs", "force_step_triton", "knn_reference", "knn_triton", "triton_available"]
