"""The neighbour list: exact while the skin bound holds, rebuilt when it breaks, grown on overflow."""

from __future__ import annotations

import numpy as np
import torch

from neurograph.cdna import CDNA
from neurograph.fields import Dynamics, NeighborListFn
from tests.fields.systems import brute_pairs, list_pairs, random_stores

SCALE = torch.tensor([1.0, 0.5, 2.0, 1.0, 1.5, 1.0, 0.8, 1.2])


def _allocate(tokens, capacity: int = 32, skin: float = 0.05):
    fn = NeighborListFn(skin=skin, capacity=capacity)
    return fn, fn.allocate(tokens.pos, tokens.radius, tokens.level, tokens.alive, tokens.count, SCALE)


def test_a_fresh_list_holds_every_pair_in_range_of_its_level() -> None:
    tokens, _ = random_stores(80, seed=1)
    _, nl = _allocate(tokens)
    assert nl.ctl.tolist() == [0.0, 0.0, 0.0] and nl.capacity == 32
    assert list_pairs(tokens.pos, nl.idx, tokens, SCALE) == brute_pairs(tokens.pos, tokens, SCALE)
    rows = torch.arange(nl.idx.shape[0])[:, None].expand_as(nl.idx)
    j = nl.idx.long()
    listed = j >= 0
    assert (j[listed] != rows[listed]).all()  # never itself
    assert tokens.alive[j[listed]].all() and tokens.alive[rows[listed]].all()
    assert (tokens.level[j[listed]] == tokens.level[rows[listed]]).all()
    assert (nl.idx[tokens.count :] == -1).all()  # unused slots have no candidates


def test_list_radius_is_twice_the_largest_radius_plus_the_skin_per_level() -> None:
    tokens, _ = random_stores(80, seed=2)
    _, nl = _allocate(tokens, skin=0.07)
    n = tokens.count
    for level, r_list in enumerate(nl.radius):
        sel = tokens.alive[:n] & (tokens.level[:n] == level)
        assert abs(r_list - (2 * tokens.radius[:n][sel].max().item() + 0.07)) < 1e-6


def test_the_list_equals_a_fresh_search_while_the_skin_bound_holds() -> None:
    tokens, _ = random_stores(80, seed=3, dead=0)
    _, nl = _allocate(tokens, skin=0.1)
    g = torch.Generator().manual_seed(0)
    pos = tokens.pos.clone()
    for _ in range(20):  # random moves, each token at most skin / 2 from where the list was built
        step = torch.randn(pos.shape, generator=g) * 0.01
        trial = pos + step
        disp = (((trial - nl.pos0) ** 2) * SCALE).sum(-1).sqrt()
        pos = torch.where((disp <= 0.05)[:, None], trial, pos)
        assert list_pairs(pos, nl.idx, tokens, SCALE) == brute_pairs(pos, tokens, SCALE)


def test_a_broken_bound_is_noticed_and_the_list_rebuilt() -> None:
    tokens, edges = random_stores(80, seed=4, dead=0, capacity=128)
    cdna = CDNA(skin=0.02, temperature=0.05, damping=0.1)  # hot and light: tokens move fast
    dyn = Dynamics("eager", check_every=4)
    gen = torch.Generator().manual_seed(0)
    dyn.run(tokens, edges, cdna, 0, gen)
    rebuilds = dyn.rebuilds
    for _ in range(5):
        dyn.run(tokens, edges, cdna, 10, gen)
        nl = dyn.neighbor_list
        # after every call the list is valid for the current positions: equal to a fresh search
        moved = (((tokens.pos - nl.pos0) ** 2) * SCALE.new_ones(8)).sum(-1).sqrt()
        assert float(moved[tokens.alive].max()) <= cdna.skin / 2 + 1e-6
        assert list_pairs(tokens.pos, nl.idx, tokens, torch.ones(8)) == brute_pairs(
            tokens.pos, tokens, torch.ones(8)
        )
    assert dyn.rebuilds > rebuilds


def test_overflow_is_flagged_on_the_device_and_the_capacity_grows() -> None:
    tokens, edges = random_stores(60, seed=5, spread=0.05, levels=False, parents=False, dead=0)
    fn, nl = _allocate(tokens, capacity=4)
    assert nl.ctl[2] == 1  # more than 4 tokens lie within the list radius of some row
    grown = fn.update(
        nl, tokens.pos, tokens.radius, tokens.level, tokens.alive, tokens.count, SCALE, grow=True
    )
    assert grown.capacity == 8 and grown.rebuilds == nl.rebuilds + 1
    dyn = Dynamics("eager", capacity=4)
    gen = torch.Generator().manual_seed(0)
    dyn.run(tokens, edges, CDNA(), 3, gen)
    assert dyn.neighbor_list.capacity >= 64 and dyn.neighbor_list.ctl[2] == 0
    assert list_pairs(tokens.pos, dyn.neighbor_list.idx, tokens, torch.ones(8)) == brute_pairs(
        tokens.pos, tokens, torch.ones(8)
    )


def test_still_covers_sees_insertions_deaths_and_larger_radii() -> None:
    tokens, _ = random_stores(40, seed=6, capacity=64)
    fn, nl = _allocate(tokens)
    args = (tokens.radius, tokens.level, tokens.alive)
    assert fn.still_covers(nl, *args, tokens.count)
    tokens.append(1, 0, pos=np.zeros((1, 8), np.float32), radius=0.05, mass=1.0)
    assert not fn.still_covers(nl, *args, tokens.count)
    tokens2, _ = random_stores(40, seed=6, capacity=64)
    tokens2.kill(np.array([0, 1]) + 10)
    assert not fn.still_covers(nl, tokens2.radius, tokens2.level, tokens2.alive, tokens2.count)
    tokens3, _ = random_stores(40, seed=6, capacity=64)
    tokens3.radius[5] = 0.5
    assert not fn.still_covers(nl, tokens3.radius, tokens3.level, tokens3.alive, tokens3.count)


def test_steps_after_a_break_wait_for_the_rebuild_exactly() -> None:
    """Checking every K = 16 steps (no-op steps after a break) gives the trajectory of checking every step."""
    final = []
    for k in (1, 16):
        tokens, edges = random_stores(60, seed=7, dead=0, capacity=64)
        tokens.vel[: tokens.count] = torch.randn(tokens.count, 8, generator=torch.Generator().manual_seed(1))
        dyn = Dynamics("eager", check_every=k)
        dyn.run(tokens, edges, CDNA(skin=0.03, damping=0.2), 60, torch.Generator().manual_seed(0))
        final.append((tokens.pos.clone(), tokens.vel.clone(), dyn.rebuilds))
    assert final[0][2] > 2  # the bound broke several times
    assert final[0][2] == final[1][2]
    torch.testing.assert_close(final[0][0], final[1][0], rtol=0, atol=0)
    torch.testing.assert_close(final[0][1], final[1][1], rtol=0, atol=0)
