"""StepInputs, the tensors of one force-field step: a frozen container with an informative repr."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from neurograph.kernels import StepInputs
from neurograph.kernels.step_inputs import children_by_parent


def _inputs(c: int = 5, k: int = 3, d: int = 2, ec: int = 7, dense: bool = True) -> StepInputs:
    attr = torch.tensor([[0.1, 1.0 + i, 0.5, -1.0 if i == 2 else 0.0] for i in range(c)])  # slot 2 dead
    tables = (torch.zeros(c, d), torch.zeros(c, d)) if dense else (None, None)
    return StepInputs(
        nbr=torch.full((c, k), -1, dtype=torch.int32),
        pos0=torch.zeros(c, 8),
        attr=attr,
        parent=torch.full((c,), -1, dtype=torch.int64),
        edge_nbr=torch.full((c, d), -1, dtype=torch.int32),
        edge_slot=torch.full((c, d), -1, dtype=torch.int32),
        degree=torch.zeros(c, dtype=torch.int32),
        edge_weight=torch.zeros(ec),
        edge_rest=torch.zeros(ec),
        edge_src=torch.zeros(ec, dtype=torch.int64),
        edge_dst=torch.zeros(ec, dtype=torch.int64),
        edge_kind=torch.zeros(ec, dtype=torch.int16),
        edge_alive=torch.zeros(ec, dtype=torch.bool),
        scale=torch.ones(8),
        coef=torch.arange(10, dtype=torch.float32),
        lo=-torch.ones(8),
        hi=torch.ones(8),
        spring_w=tables[0],
        spring_rest=tables[1],
    )


def test_repr_shows_shapes_dtypes_and_device_not_values() -> None:
    text = repr(_inputs(dense=False))
    assert text.startswith("StepInputs(device='cpu', nbr=[5, 3] int32, pos0=[5, 8] float32")
    assert "attr=[5, 4] float32" in text and "edge_kind=[7] int16" in text and "coef=[10] float32" in text
    assert "spring_w=None" in text and "tensor(" not in text


def test_attribute_views_and_liveness() -> None:
    inp = _inputs()
    assert inp.capacity == 5 and inp.device == torch.device("cpu") and inp.dense
    assert inp.mass.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert inp.alive.tolist() == [True, True, False, True, True]
    assert inp.radius.data_ptr() == inp.attr.data_ptr()  # views, not copies
    assert not _inputs(dense=False).dense


def test_frozen_and_a_rebuild_swaps_only_the_list() -> None:
    inp = _inputs()
    with pytest.raises(dataclasses.FrozenInstanceError):
        inp.nbr = torch.zeros(5, 3, dtype=torch.int32)  # type: ignore[misc]
    nbr, pos0 = torch.zeros(5, 4, dtype=torch.int32), torch.ones(5, 8)
    new = inp.with_neighbors(nbr, pos0)
    assert new is not inp and new.nbr is nbr and new.pos0 is pos0
    assert inp.nbr.shape == (5, 3)  # the original is unchanged
    for f in dataclasses.fields(StepInputs):
        if f.name not in ("nbr", "pos0"):
            assert getattr(new, f.name) is getattr(inp, f.name), f.name


def test_children_by_parent_lists_each_parents_living_children_in_slot_order() -> None:
    # slot:        0   1   2   3   4   5   6   7
    parent = torch.tensor([-1, 4, 4, 0, -1, 4, 0, 2])
    code = torch.tensor([0.0, 0, 0, 0, 1, 0, -1, 0])  # slot 6 dead
    attr = torch.zeros(8, 4)
    attr[:, 3] = code
    attr[2, 3] = -1.0  # slot 2 dead: slot 7's parent is dead, slot 2 is no child either
    order, start = children_by_parent(parent, attr)
    assert order.dtype == start.dtype == torch.int32 and order.shape == (8,) and start.shape == (9,)
    children = {p: order[start[p] : start[p + 1]].tolist() for p in range(8)}
    assert children == {0: [3], 1: [], 2: [], 3: [], 4: [1, 5], 5: [], 6: [], 7: []}
    assert start[8] == 3  # three living children with a living parent
    assert sorted(order.tolist()) == list(range(8))  # a permutation: the rest follow, unused


def test_children_by_parent_is_a_fixed_order_for_random_parents() -> None:
    gen = torch.Generator().manual_seed(0)
    parent = torch.randint(-1, 6, (500,), generator=gen)
    attr = torch.zeros(500, 4)
    order, start = children_by_parent(parent, attr)
    for p in range(6):
        got = order[start[p] : start[p + 1]].long()
        assert torch.equal(got, (parent == p).nonzero().squeeze(1))  # ascending slots
    again = children_by_parent(parent.clone(), attr.clone())
    assert torch.equal(order, again[0]) and torch.equal(start, again[1])
