"""Force-field dynamics: pair energies, forces and integrators (DESIGN §4)."""

from neurograph.fields.energy import repulsion_energy, spring_energy, well_energy

__all__ = ["repulsion_energy", "spring_energy", "well_energy"]
