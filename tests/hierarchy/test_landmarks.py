"""Landmarks (``neurograph.hierarchy.landmarks``): a level of more than ``2 * LANDMARKS`` tokens is
grouped on a sample that carries the mass of all; on clustered data its fields are the exact ones."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import normalized_mutual_info_score as nmi

import neurograph as ng
from neurograph.datasets import nested_groups
from neurograph.hierarchy import BasinGrouping
from neurograph.hierarchy.landmarks import LANDMARKS, landmark_rows, nearest_landmark


def test_landmark_rows_are_distinct_sorted_and_fixed_by_n() -> None:
    rows = landmark_rows(1000, 100, torch.device("cpu"))
    assert rows.numel() == 100 and (rows.diff() > 0).all() and int(rows.max()) < 1000
    assert torch.equal(rows, landmark_rows(1000, 100, torch.device("cpu")))
    assert not torch.equal(rows, landmark_rows(1001, 100, torch.device("cpu")))


def test_nearest_landmark_matches_brute_force_in_the_weighted_metric() -> None:
    rng = np.random.default_rng(0)
    pos = torch.from_numpy(rng.uniform(-1, 1, (3000, 8))).float()
    scale = torch.tensor([4.0, 1.0, 1.0, 0.25, 1.0, 1.0, 2.0, 1.0])
    rows = landmark_rows(3000, 200, pos.device)
    got = nearest_landmark(pos, rows, scale)
    d = (((pos[:, None, :] - pos[rows][None, :, :]) ** 2) * scale).sum(-1)  # (n, L) oracle
    want = d.argmin(1)
    assert torch.equal(got[rows], torch.arange(200))  # a landmark is in its own cell
    ok = got == want
    # where they differ the two landmarks are tied to float precision
    gap = (d.gather(1, got[:, None]) - d.gather(1, want[:, None])).abs().squeeze(1)
    assert bool((ok | (gap < 1e-5)).all()) and ok.float().mean() > 0.999


def test_landmark_fields_are_the_exact_fields_on_clustered_data() -> None:
    x, labels = nested_groups((4, 5), n=12_000, seed=3)
    pos, mass = torch.from_numpy(x), torch.ones(len(x))
    exact = BasinGrouping(landmarks=0)(pos, mass)
    assert nmi(labels[:, 1], exact.cluster.numpy()) > 0.99
    sampled = BasinGrouping(landmarks=2000)(pos, mass)  # 6 tokens a landmark
    assert exact.n_fields == sampled.n_fields == 20
    assert nmi(exact.cluster.numpy(), sampled.cluster.numpy()) > 0.99
    assert int(sampled.sizes.sum()) == (sampled.cluster >= 0).sum() and sampled.sizes.min() >= 5
    assert (sampled.cluster[sampled.peak] == sampled.cluster).all()  # a field's peak is one of its tokens
    again = BasinGrouping(landmarks=2000)(pos, mass)
    assert torch.equal(again.cluster, sampled.cluster)  # deterministic


def test_a_uniform_cloud_on_landmarks_is_one_field() -> None:
    rng = np.random.default_rng(4)
    pos = torch.from_numpy(rng.uniform(-1, 1, (20_000, 8))).float()
    assert BasinGrouping(landmarks=4000)(pos, torch.ones(20_000)).n_fields == 1


def test_strong_links_join_cells_across_a_gap() -> None:
    rng = np.random.default_rng(5)
    a = rng.normal(0.0, 0.05, (3000, 8))
    b = rng.normal(3.0, 0.05, (3000, 8))
    pos = torch.from_numpy(np.concatenate([a, b])).float()
    g = BasinGrouping(landmarks=500)
    assert g(pos, torch.ones(6000)).n_fields == 2
    # one strong learned edge between the densest tokens of the groups (a saddle at the peaks' height)
    centre_a = int(np.linalg.norm(a, axis=1).argmin())
    centre_b = 3000 + int(np.linalg.norm(b - 3.0, axis=1).argmin())
    links = torch.tensor([[centre_a], [centre_b]])
    assert BasinGrouping(landmarks=0)(pos, torch.ones(6000), links=links).n_fields == 1  # exact
    assert g(pos, torch.ones(6000), links=links).n_fields == 1


def test_engine_hierarchy_of_a_very_large_level_uses_landmarks() -> None:
    x, labels = nested_groups((4, 5), n=2 * LANDMARKS + 5000, seed=1)
    eng = ng.Engine(cdna=ng.CDNA.calibrate(x))
    ids = eng.add_tokens(x)
    h = eng.hierarchy()
    assert nmi(labels[:, 1], h.ancestors(ids, 1)) > 0.99
    assert nmi(labels[:, 0], h.ancestors(ids, 2)) > 0.99


@pytest.mark.gpu
def test_landmark_fields_on_cuda_match_the_cpu() -> None:
    x, _ = nested_groups((4, 5), n=12_000, seed=3)
    pos, mass = torch.from_numpy(x), torch.ones(len(x))
    rows = landmark_rows(len(x), 2000, torch.device("cpu"))
    cpu = nearest_landmark(pos, rows, torch.ones(8))
    gpu = nearest_landmark(pos.cuda(), rows.cuda(), torch.ones(8).cuda()).cpu()
    assert (cpu == gpu).float().mean() > 0.999  # float32 on the GPU, float64 on the CPU: near-ties only
    a = BasinGrouping(landmarks=2000)(pos, mass)
    b = BasinGrouping(landmarks=2000)(pos.cuda(), mass.cuda())
    assert nmi(a.cluster.numpy(), b.cluster.cpu().numpy()) > 0.99
