"""The force field: pair energies, forces, the integrator, the neighbour list and backends (DESIGN §4).

This package is the *force field* that moves tokens (``Engine.step`` / ``Engine.run``). It is not the
*emergent fields* — the groups of tokens that become field tokens one level up — which live in
:mod:`neurograph.hierarchy`; the field wells of this package are what make those groups form.

- :mod:`~neurograph.fields.energy`: pair energies as pure functions of distances, with their radial forces;
- :mod:`~neurograph.fields.lift`: one helper lifting a pair energy to the system over a neighbour list or
  an edge list;
- :mod:`~neurograph.fields.system`: which tokens interact, and :func:`pack_inputs`, the stores packed into
  the :class:`StepInputs` every backend, reference and kernel reads (defined in :mod:`neurograph.kernels`);
- :mod:`~neurograph.fields.reference`: the potential in eager torch, forces by autograd (the oracle);
- :mod:`~neurograph.fields.forces`: analytic forces in the dense gather form;
- :mod:`~neurograph.fields.integrate`: damped, mass-aware velocity Verlet with a Langevin thermostat;
- :mod:`~neurograph.fields.neighbor_list`: the neighbour list as data (skin, displacement, overflow);
- :mod:`~neurograph.fields.backends`: ``reference``, ``eager``, ``compiled``, ``triton``;
- :mod:`~neurograph.fields.dynamics`: :class:`Dynamics`, the driver behind ``Engine.step`` / ``Engine.run``.
"""

from neurograph.fields.backends import BACKENDS, resolve_backend
from neurograph.fields.dynamics import Dynamics, StepStats
from neurograph.fields.energy import (
    parent_energy,
    parent_force,
    repulsion_energy,
    repulsion_force,
    spring_energy,
    spring_force,
    well_energy,
    well_force,
)
from neurograph.fields.forces import gather_forces
from neurograph.fields.integrate import Verlet, VerletState, leapfrog_step
from neurograph.fields.lift import lift, pair_geometry
from neurograph.fields.neighbor_list import NeighborList, NeighborListFn
from neurograph.fields.reference import energy_terms, potential_energy, reference_forces
from neurograph.fields.system import ForceParams, StepInputs, pack_inputs, step_coef

__all__ = [
    "BACKENDS",
    "Dynamics",
    "ForceParams",
    "NeighborList",
    "NeighborListFn",
    "StepInputs",
    "StepStats",
    "Verlet",
    "VerletState",
    "energy_terms",
    "gather_forces",
    "leapfrog_step",
    "lift",
    "pack_inputs",
    "pair_geometry",
    "parent_energy",
    "parent_force",
    "potential_energy",
    "reference_forces",
    "repulsion_energy",
    "repulsion_force",
    "resolve_backend",
    "spring_energy",
    "spring_force",
    "step_coef",
    "well_energy",
    "well_force",
]
