"""``Engine.step`` / ``Engine.run``: stats, metrics events, the index, persistence, and fields emerging."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import silhouette_score

import neurograph as ng
from neurograph.fields import StepStats
from tests.fields.systems import brute_pairs, list_pairs

CHAT = "signal.input.external.text.chat"


def _engine(n: int = 80, seed: int = 0, **kwargs) -> ng.Engine:
    eng = ng.Engine(seed=seed, capacity=128, **kwargs)
    rng = np.random.default_rng(seed)
    eng.emit_batch(CHAT, rng.uniform(-0.25, 0.25, (n, 8)), priorities=rng.integers(0, 256, n))
    return eng


def test_step_returns_stats_and_publishes_one_metrics_event() -> None:
    eng = _engine()
    events = []
    eng.subscribe("dynamics.*", events.append, channels=["metrics"])
    before = eng.token_state.pos.clone()
    stats = eng.step(10)
    assert isinstance(stats, StepStats) and stats.steps == 10 and eng.steps == 10
    assert stats.tokens == eng.token_state.n_alive and stats.backend == "eager"
    assert not torch.equal(eng.token_state.pos, before)
    assert len(events) == 1
    ev = events[0]
    assert ev.channel == "metrics" and ev.event_type == "dynamics.stepped"
    assert ev.data["step"] == 10 and ev.data["total_energy"] == pytest.approx(stats.total_energy)


def test_run_publishes_every_and_calls_back() -> None:
    eng = _engine()
    events, seen = [], []
    eng.subscribe("dynamics.*", events.append, channels=["metrics"])
    summary = eng.run(30, every=10, callback=seen.append)
    assert [e.data["step"] for e in events] == [10, 20, 30]
    assert [s.steps for s in seen] == [10, 10, 10]
    assert summary.steps == 30 and summary.total_energy == seen[-1].total_energy
    assert summary.max_displacement >= max(s.max_displacement for s in seen) - 1e-6


def test_steps_are_refused_with_bad_arguments_and_change_nothing() -> None:
    eng = _engine()
    before = eng.token_state.pos.clone()
    with pytest.raises(ValueError, match="steps"):
        eng.step(-1)
    with pytest.raises(ValueError, match="every"):
        eng.run(10, every=0)
    assert torch.equal(eng.token_state.pos, before) and eng.steps == 0
    with pytest.raises(ValueError, match="dynamics backend"):
        ng.Engine(dynamics="warp")
    assert ng.Engine(dynamics="reference").dynamics.backend_name == "reference"


def test_the_index_sees_the_moved_tokens() -> None:
    eng = _engine()
    eng.run(100, every=100)
    t = eng.token_state
    q = t.pos[:5].numpy().astype(np.float64)
    got, _ = eng.index.knn(q, 3, exclude=np.arange(5))
    d = ((q[:, None, :] - t.pos[: t.count].numpy()[None]) ** 2).sum(-1)
    d[np.arange(5), np.arange(5)] = np.inf
    d[:, ~t.alive[: t.count].numpy()] = np.inf
    assert (got == np.argsort(d, axis=1, kind="stable")[:, :3]).all()


def test_new_tokens_join_the_neighbour_list() -> None:
    eng = _engine(60)
    eng.step(5)
    rebuilds = eng.dynamics.rebuilds
    eng.emit_batch(CHAT, np.random.default_rng(9).uniform(-0.25, 0.25, (20, 8)))
    eng.step(5)
    assert eng.dynamics.rebuilds > rebuilds
    nl, t = eng.dynamics.neighbor_list, eng.token_state
    scale = torch.tensor(eng.cdna.axis_scale)
    assert list_pairs(t.pos, nl.idx, t, scale) == brute_pairs(t.pos, t, scale)


def test_a_cdna_change_takes_effect_at_the_next_step() -> None:
    eng = _engine()
    eng.step(5)
    rebuilds = eng.dynamics.rebuilds
    eng.update_cdna(skin=0.08)
    eng.step(1)
    assert eng.dynamics.rebuilds == rebuilds + 1 and eng.dynamics.neighbor_list.skin == 0.08


def test_steps_are_logged_and_replayed_when_a_store_opens(tmp_path) -> None:
    mem = _engine(40)
    mem.run(30, every=10)
    eng = ng.Engine(seed=0, capacity=128, path=tmp_path / "store")
    rng = np.random.default_rng(0)
    eng.emit_batch(CHAT, rng.uniform(-0.25, 0.25, (40, 8)), priorities=rng.integers(0, 256, 40))
    eng.run(30, every=10)
    eng.store.close()  # let go like a killed process: no final snapshot, the log is replayed
    back = ng.Engine.open(tmp_path / "store")
    n = mem.token_state.count
    torch.testing.assert_close(back.token_state.pos[:n], mem.token_state.pos[:n], rtol=0, atol=0)
    torch.testing.assert_close(back.token_state.vel[:n], mem.token_state.vel[:n], rtol=0, atol=0)
    assert back.steps == 30
    back.save()  # a snapshot carries the step counter
    back.close()
    with ng.Engine.open(tmp_path / "store") as again:
        assert again.steps == 30


def test_two_linked_groups_started_interleaved_separate() -> None:
    """Emergence sanity: each group's members are linked by learned edges (springs), the groups are not
    linked to each other; started interleaved, they end as two compact, separated groups."""
    rng = np.random.default_rng(0)
    eng = ng.Engine(seed=0, capacity=64)  # the default CDNA
    n = 20
    eng.add_tokens(rng.uniform(-0.15, 0.15, (2 * n, 8)))
    labels = np.arange(2 * n) % 2  # interleaved
    pairs = [(a, b) for g in (0, 1) for a in range(g, 2 * n, 2) for b in range(a + 2, 2 * n, 2)]
    src, dst = np.array(pairs).T
    eng.edge_state.append(src, dst, 0, kind=0x50, weight=1.0, rest=eng.cdna.rest_length, confidence=1.0)
    pos = lambda: eng.token_state.pos[: 2 * n].numpy()  # noqa: E731
    assert silhouette_score(pos(), labels) < 0.1
    eng.run(600, every=200)
    assert silhouette_score(pos(), labels) > 0.6
    centres = [pos()[labels == g].mean(0) for g in (0, 1)]
    spread = max(np.linalg.norm(pos()[labels == g] - centres[g], axis=1).max() for g in (0, 1))
    assert np.linalg.norm(centres[0] - centres[1]) > 2 * spread  # compact and apart


def test_hierarchy_rebuilds_between_stretches_of_a_run() -> None:
    """``hierarchy_every`` adds field tokens from inside ``run`` (here growing the capacity too): the next
    stretch steps them with their parent pull, and the run's summary still covers the whole run."""
    rng = np.random.default_rng(0)
    centers = rng.uniform(-0.6, 0.6, (6, 8))
    x = centers[rng.integers(0, 6, 400)] + 0.03 * rng.standard_normal((400, 8))
    eng = ng.Engine(seed=0, capacity=64, hierarchy_every=40)
    eng.emit_batch(CHAT, x)
    capacity = eng.token_state.capacity
    fill = capacity - eng.token_state.count  # a full store: the first field token doubles the capacity
    eng.add_tokens(0.9 + 0.05 * rng.standard_normal((fill, 8)))
    born = []
    eng.subscribe("field.*", born.append, channels=["status"])
    stats = eng.run(120, every=40)
    assert born and eng.token_state.capacity > capacity
    assert stats.steps == 120 and eng.steps == 120 and np.isfinite(stats.total_energy)
    levels = eng.token_state.level[: eng.token_state.count]
    assert (levels > 0).any() and (eng.token_state.parent[: eng.token_state.count] >= 0).any()


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda eng: eng.step(-5), "steps"),
        (lambda eng: eng.step("10"), "steps"),
        (lambda eng: eng.step(2.0), "steps"),
        (lambda eng: eng.run(True), "steps"),
        (lambda eng: eng.run(10, every=0), "every"),
        (lambda eng: eng.run(10, every="5"), "every"),
        (lambda eng: eng.run(10, callback=3), "callback"),
    ],
)
def test_bad_step_arguments_are_typed_errors_naming_the_field(call, field) -> None:
    eng = _engine()
    before = eng.token_state.pos.clone()
    with pytest.raises(ng.errors.InvalidArgument) as info:
        call(eng)
    assert info.value.field == field
    assert isinstance(info.value, ng.NeurographError)
    assert torch.equal(eng.token_state.pos, before) and eng.steps == 0
