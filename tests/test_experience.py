"""The experience stream: ring buffer, samplers against their weights (chi-square), curiosity, appraisers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

from neurograph.experience import (
    REWARD_SLOTS,
    Appraisal,
    Curiosity,
    CuriosityMap,
    Efficiency,
    ExperienceStream,
    Goal,
    Homeostasis,
    MixedSampler,
    PrioritySampler,
    RecencySampler,
    UniformSampler,
)


def filled(device: str = "cpu", n: int = 40, capacity: int = 64) -> ExperienceStream:
    rng = np.random.default_rng(0)
    s = ExperienceStream(capacity, device=device)
    s.add(
        rng.uniform(-1, 1, (n, 8)),
        action=rng.uniform(-1, 1, (n, 8)),
        reward=rng.normal(0, 1, (n, 4)) * (rng.random((n, 1)) < 0.5),  # half the rows without reward
        event_type=[f"signal.test.e{i % 3}" for i in range(n)],
        episode=np.arange(n) // 10,
    )
    return s


# --- the ring buffer -------------------------------------------------------------------------------------
def test_ring_buffer_keeps_the_newest_rows(device):
    s = ExperienceStream(10, device=device)
    states = torch.arange(15 * 8, dtype=torch.float32).reshape(15, 8) / 200
    s.add(states[:7], event_type="a.b")
    rows = s.add(states[7:], event_type="a.c", episode=3)
    assert len(s) == 10 and s.total == 15 and rows.tolist() == [7, 8, 9, 0, 1, 2, 3, 4]
    held = s.get(torch.arange(10))
    written = sorted(held.step.tolist())
    assert written == list(range(5, 15))  # the oldest five were overwritten
    torch.testing.assert_close(held.state, states[held.step.cpu()].to(device))
    assert held.event_types[0] == "a.c" and set(held.event_types) == {"a.b", "a.c"}
    big = ExperienceStream(4, device=device)
    big.add(states)  # a batch larger than the buffer keeps its tail
    assert sorted(big.get(torch.arange(4)).step.tolist()) == [11, 12, 13, 14]


def test_add_validates_its_inputs():
    s = ExperienceStream(8)
    with pytest.raises(ValueError, match="state"):
        s.add(torch.zeros(3, 7))
    with pytest.raises(ValueError, match="reward"):
        s.add(torch.zeros(2, 8), reward=torch.zeros(2, 3))
    with pytest.raises(ValueError, match="finite"):
        s.add([math.nan] * 8)
    with pytest.raises(ValueError, match="event_type"):
        s.add(torch.zeros(2, 8), event_type=["a.b"])
    with pytest.raises(ValueError, match="empty"):
        UniformSampler()(s, 3)
    assert len(s) == 0 and s.total == 0
    with pytest.raises(ValueError, match="capacity"):
        ExperienceStream(0)


# --- samplers ----------------------------------------------------------------------------------------
SAMPLERS = {
    "uniform": UniformSampler(),
    "priority": PrioritySampler(alpha=0.7, eps=0.05),
    "priority_goal_slot": PrioritySampler(alpha=1.0, eps=0.01, slot="goal"),
    "recency": RecencySampler(half_life=8.0),
    "mixed": MixedSampler(((UniformSampler(), 0.2), (PrioritySampler(), 0.5), (RecencySampler(10.0), 0.3))),
}


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_sampler_frequencies_match_their_weights(name, device):
    s = filled(device)
    sampler = SAMPLERS[name]
    p = sampler.probs(s).cpu().numpy()
    assert p.shape == (40,) and p.sum() == pytest.approx(1.0)
    n = 200_000
    gen = torch.Generator(device=device).manual_seed(0)
    idx = sampler(s, n, gen).cpu().numpy()
    observed = np.bincount(idx, minlength=40)
    assert chisquare(observed, n * p).pvalue > 1e-3


def test_sampler_weights_follow_their_formulas():
    s = filled(n=40, capacity=32)  # wrapped: rows hold writes 8..39
    r = s.reward[:32].double()
    w = (r.sum(1).abs() + 0.05) ** 0.7
    torch.testing.assert_close(PrioritySampler(0.7, 0.05).probs(s), w / w.sum())
    age = (39 - s.order[:32]).double()
    w = 0.5 ** (age / 8.0)
    torch.testing.assert_close(RecencySampler(8.0).probs(s), w / w.sum())
    newest = int(torch.argmax(s.order))
    p = RecencySampler(8.0).probs(s)
    assert p[newest] == pytest.approx(2 * p[int((s.order == 31).nonzero())])  # half as likely 8 writes back
    mixed = MixedSampler(((UniformSampler(), 1.0), (RecencySampler(8.0), 3.0))).probs(s)
    torch.testing.assert_close(mixed, 0.25 / 32 + 0.75 * p)


def test_sample_returns_rows():
    s = filled()
    b = s.sample(16, PrioritySampler(), torch.Generator().manual_seed(1))
    assert len(b) == 16 and b.state.shape == (16, 8) and b.reward.shape == (16, len(REWARD_SLOTS))
    assert all(t.startswith("signal.test.e") for t in b.event_types)
    torch.testing.assert_close(b.state, s.state[b.index])


# --- curiosity ---------------------------------------------------------------------------------------
def test_curiosity_of_new_repeated_and_remembered_cells(device):
    tau = 50.0
    cm = CuriosityMap(cell_size=0.1, tau=tau, device=device)
    x = torch.full((8,), 0.33, device=device)
    assert cm.score(x, 0.0).item() == 1.0  # a new cell
    assert cm.score(x, 1.0).item() < 0.1  # an immediate repeat
    assert cm.score(x, 1.0 + tau).item() == pytest.approx(1 - math.exp(-1), abs=1e-9)  # ≈ 0.632 after tau
    assert cm.score(x + 0.04, 2.0 + tau).item() < 0.1  # same cell
    assert cm.score(x + 0.1, 2.0 + tau).item() == 1.0  # the next cell


def test_curiosity_batches_are_sequential():
    cm = CuriosityMap(cell_size=0.2, tau=10.0)
    x = torch.tensor([[0.1] * 8, [0.5] * 8, [0.1] * 8, [0.1] * 8])
    score = cm.score(x, torch.tensor([0.0, 0.0, 5.0, 5.0]))
    expected = [1.0, 1.0, 1 - math.exp(-0.5), 0.0]  # the third row sees the first, the fourth the third
    np.testing.assert_allclose(score.numpy(), expected, atol=1e-12)
    assert len(cm) == 2
    peek = cm.score(x[:1], 15.0, update=False)
    assert peek.item() == pytest.approx(1 - math.exp(-1.0)) and cm.score(x[:1], 15.0).item() == peek.item()
    with pytest.raises(ValueError):
        CuriosityMap(cell_size=0.0)


# --- appraisers --------------------------------------------------------------------------------------
def test_appraisers_and_the_four_reward_slots():
    s = torch.tensor([[0.4] * 8, [0.0] * 8])
    a = torch.tensor([[0.5] * 8, [0.0] * 8])
    s2 = torch.tensor([[0.2] * 8, [0.3] * 8])
    h = Homeostasis(scale=2.0)(s, a, s2)
    torch.testing.assert_close(h, (s.norm(dim=1) - s2.norm(dim=1)) / 2.0)  # drive reduction
    assert h[0] > 0 > h[1]
    torch.testing.assert_close(Efficiency(cost=2.0)(s, a, s2), torch.tensor([-0.5, 0.0]))
    assert Goal(goal=(0.3,) * 8, radius=0.05)(s, a, s2).tolist() == [0.0, 1.0]
    rewards = Appraisal(Homeostasis(), Curiosity(CuriosityMap(tau=5.0)), Efficiency(), Goal())(
        s, a, s2, t=0.0
    )
    assert rewards.shape == (2, 4)
    assert rewards[:, REWARD_SLOTS.index("curiosity")].tolist() == [1.0, 1.0]
    assert Appraisal()(s, a, s2).abs().sum() == 0
    stream = ExperienceStream(4)
    stream.add(s, a, rewards, event_type="experience.step")
    torch.testing.assert_close(stream.reward[:2], rewards)
