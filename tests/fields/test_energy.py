"""Energies and forces: every analytic force is -grad of its energy (autograd is the oracle)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neurograph.cdna import CDNA
from neurograph.fields import (
    energy_terms,
    gather_forces,
    lift,
    pack_inputs,
    parent_energy,
    parent_force,
    potential_energy,
    reference_forces,
    repulsion_energy,
    repulsion_force,
    spring_energy,
    spring_force,
    well_energy,
    well_force,
)
from tests.fields.systems import make_case

# (name, energy(d, p), force(d, p), parameter sampler); p is a dict of per-pair tensors
PAIR_TERMS = {
    "spring": (
        lambda d, p: spring_energy(d, p["w"], p["rest"], 1.7),
        lambda d, p: spring_force(d, p["w"], p["rest"], 1.7),
    ),
    "repulsion": (
        lambda d, p: repulsion_energy(d, p["sigma"], 10.0),
        lambda d, p: repulsion_force(d, p["sigma"], 10.0),
    ),
    "well": (
        lambda d, p: well_energy(d, p["s"], p["m"], p["r"], 0.8),
        lambda d, p: well_force(d, p["s"], p["m"], p["r"], 0.8),
    ),
    "parent": (lambda d, p: parent_energy(d, 0.5), lambda d, p: parent_force(d, 0.5)),
}


def _params(g: torch.Generator, n: int) -> dict[str, torch.Tensor]:
    u = lambda lo, hi: lo + (hi - lo) * torch.rand(n, generator=g, dtype=torch.float64)  # noqa: E731
    return {
        "w": u(0, 1),
        "rest": u(0, 0.3),
        "sigma": u(0.05, 0.3),
        "s": u(0, 1),
        "m": u(0.1, 5),
        "r": u(0.05, 0.4),
    }


@pytest.mark.parametrize("name", list(PAIR_TERMS))
def test_radial_force_is_minus_the_derivative_of_the_energy(name: str) -> None:
    energy, force = PAIR_TERMS[name]
    g = torch.Generator().manual_seed(1)
    p = _params(g, 2000)
    d = (0.5 * torch.rand(2000, generator=g, dtype=torch.float64)).requires_grad_(True)
    (grad,) = torch.autograd.grad(energy(d, p).sum(), d)
    torch.testing.assert_close(force(d.detach(), p), -grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", list(PAIR_TERMS))
def test_energies_are_the_same_for_numpy_and_torch(name: str) -> None:
    energy, force = PAIR_TERMS[name]
    g = torch.Generator().manual_seed(2)
    p = _params(g, 50)
    d = torch.rand(50, generator=g, dtype=torch.float64)
    pn = {k: v.numpy() for k, v in p.items()}
    np.testing.assert_allclose(energy(d.numpy(), pn), energy(d, p).numpy(), rtol=1e-12)
    np.testing.assert_allclose(force(d.numpy(), pn), force(d, p).numpy(), rtol=1e-12)


def test_finite_range_terms_vanish_outside_their_range() -> None:
    d = torch.tensor([0.3, 0.5])
    assert repulsion_energy(d, torch.tensor(0.3), 10.0).tolist() == [0.0, 0.0]
    assert repulsion_force(d, torch.tensor(0.3), 10.0).tolist() == [0.0, 0.0]
    assert well_energy(d, 1.0, 2.0, torch.tensor(0.3), 1.0).tolist() == [0.0, 0.0]
    assert well_force(d, 1.0, 2.0, torch.tensor(0.3), 1.0).tolist() == [0.0, 0.0]


SYSTEMS = [
    pytest.param({}, id="levels-parents-dead"),
    pytest.param({"levels": False, "parents": False, "dead": 0}, id="one-level"),
    pytest.param({"spread": 0.08, "seed": 3, "capacity_k": 64}, id="dense-overlapping"),
    pytest.param({"degree": 0, "seed": 4}, id="no-edges"),
]


@pytest.mark.parametrize("kwargs", SYSTEMS)
def test_gather_forces_equal_minus_grad_of_the_reference_energy(kwargs: dict) -> None:
    case = make_case(**kwargs)
    pos = case.tokens.pos
    want, energy = reference_forces(pos.double(), case.inputs)  # float64 oracle
    force, per_token = gather_forces(pos, case.inputs)
    assert force.dtype == torch.float32 and force.shape == pos.shape
    scale = want.abs().max().item()
    torch.testing.assert_close(force.double(), want, rtol=1e-4, atol=1e-5 * max(scale, 1.0))
    torch.testing.assert_close(per_token.sum().double(), energy, rtol=1e-5, atol=1e-6)
    dead = ~case.tokens.alive
    assert (force[dead] == 0).all() and (per_token[dead] == 0).all()


def test_pack_inputs_reads_the_cdna_and_gather_forces_needs_the_dense_tables() -> None:
    cdna = CDNA(repulsion_k=7.0, dt=0.02, skin=0.08, axis_scale=(2.0,) + (1.0,) * 7)
    case = make_case(cdna, dense=False, seed=7)
    inp = case.inputs
    want = [1.0, 7.0, 1.0, 0.5, 0.02, cdna.damping, cdna.temperature, cdna.max_speed, cdna.max_force, 0.04]
    torch.testing.assert_close(inp.coef, torch.tensor(want))
    assert inp.scale.tolist() == list(cdna.axis_scale)
    assert inp.lo.tolist() == list(cdna.axis_min) and inp.hi.tolist() == list(cdna.axis_max)
    assert inp.spring_w is None and inp.spring_rest is None
    assert inp.edge_src is case.edges.src  # the edge columns are not copied
    order, start = inp.child_order, inp.child_start  # the children in CSR form, for the fused kernel
    parent, alive = case.tokens.parent, case.tokens.alive
    for p in range(case.tokens.capacity):
        want = (parent == p) & alive & bool(alive[p])
        assert order[start[p] : start[p + 1]].long().tolist() == want.nonzero().squeeze(1).tolist()
    assert int(start[-1]) > 0  # the system has children
    dense = pack_inputs(case.tokens, case.edges, cdna, inp.nbr, inp.pos0)
    assert dense.child_order is None and dense.child_start is None and dense.spring_w is not None
    with pytest.raises(ValueError, match="dense=True"):
        gather_forces(case.tokens.pos, inp)


def test_every_term_contributes_in_the_test_system() -> None:
    case = make_case(spread=0.1, capacity_k=64)
    terms = energy_terms(case.tokens.pos.double(), case.inputs)
    assert set(terms) == {"repulsion", "well", "spring", "parent"}
    assert terms["repulsion"] > 0 and terms["well"] < 0 and terms["spring"] > 0 and terms["parent"] > 0


def test_structural_edges_are_not_springs() -> None:
    case = make_case(seed=5, levels=False, parents=False)
    before = energy_terms(case.tokens.pos.double(), case.inputs)["spring"]
    case.edges.append(np.array([0]), np.array([1]), 0, kind=0x60, weight=1.0, rest=0.0)  # part_of
    after = energy_terms(case.tokens.pos.double(), case.inputs)["spring"]
    assert after == before


def test_lift_counts_a_neighbour_list_pair_once_and_an_edge_once() -> None:
    pos = torch.tensor([[0.0] * 8, [0.3] + [0.0] * 7, [0.0, 0.4] + [0.0] * 6], dtype=torch.float64)
    scale = torch.ones(8, dtype=torch.float64)
    nbr = torch.tensor([[1, 2], [0, -1], [0, -1]])  # symmetric: pairs (0, 1) and (0, 2)
    edges = torch.tensor([[0, 0], [1, 2]])

    def e(d: torch.Tensor, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        return d

    assert lift(e, pos, scale, neighbors=nbr).item() == pytest.approx(0.7)
    assert lift(e, pos, scale, edges=edges).item() == pytest.approx(0.7)
    with pytest.raises(ValueError, match="exactly one"):
        lift(e, pos, scale)


def test_lift_has_a_zero_gradient_between_coincident_tokens() -> None:
    pos = torch.zeros(2, 8, dtype=torch.float64, requires_grad=True)
    energy = lift(
        lambda d, i, j: repulsion_energy(d, 0.1, 10.0), pos, torch.ones(8), edges=torch.tensor([[0], [1]])
    )
    (grad,) = torch.autograd.grad(energy, pos)
    assert torch.isfinite(grad).all() and (grad == 0).all()


def test_metric_scales_enter_the_forces() -> None:
    scaled = make_case(seed=6, cdna=CDNA(axis_scale=(4.0, 1, 1, 1, 1, 1, 1, 0.25)))
    plain = make_case(seed=6, cdna=CDNA())
    e_scaled = potential_energy(scaled.tokens.pos.double(), scaled.inputs)
    e_plain = potential_energy(plain.tokens.pos.double(), plain.inputs)
    assert e_scaled != pytest.approx(e_plain.item())
