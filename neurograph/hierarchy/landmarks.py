"""Landmarks: the basins of a very large level found on a sample that carries the mass of all.

An exact kNN graph of ``n`` tokens in 8-D costs about ``n log n`` tree work with a large constant (3 s for
1e5 uniform tokens on two CPU cores, a minute for 1e6), and the density, saddles and persistence rounds
grow with it. Where a level has more than ``2 L`` tokens (``L`` = :data:`LANDMARKS`), the grouping runs on
``L`` *landmarks* instead, in the spirit of Birch's CF-tree (Zhang, Ramakrishnan, Livny 1996: summarise,
then cluster the summaries) and of landmark/witness complexes in topological data analysis:

1. ``L`` tokens are drawn without replacement (a fixed seed: the same ``n`` gives the same rows);
2. every token is assigned to its nearest landmark (exact 1-NN in the weighted metric; a landmark to
   itself), and each landmark carries the summed mass of its cell;
3. the level's grouping runs on the landmarks (their positions, the cell masses, the strong links mapped
   to landmark pairs): the mass density of a landmark counts the mass of the cells around it, so it
   estimates the same density as the tokens' own graph at a coarser resolution;
4. every token takes the field of its landmark.

A field then needs ``min_field_size`` landmarks (each stands for ``n / L`` tokens on average); the fields
of smaller levels are unchanged (exact). The tests compare the landmark fields with the exact ones on
clustered data.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch import Tensor

from neurograph.kernels import knn_reference, knn_triton, triton_available

__all__ = ["LANDMARKS", "landmark_rows", "nearest_landmark"]

LANDMARKS = 32_768  # landmarks of a level with more than twice as many tokens


def landmark_rows(n: int, count: int, device: torch.device) -> Tensor:
    """``count`` distinct rows of ``0..n-1``, ascending, drawn with a fixed seed (the same for each ``n``).

    Shapes:
        -> ``[count]`` int64 on ``device``.
    """
    gen = torch.Generator().manual_seed(n)
    return torch.randperm(n, generator=gen)[:count].sort().values.to(device)


def nearest_landmark(pos: Tensor, rows: Tensor, scale: Tensor) -> Tensor:
    """The landmark nearest to each token (index into ``rows``; each landmark its own), exact.

    Shapes:
        pos ``[n, 8]``, rows ``[L]``, scale ``[8]`` -> ``[n]`` int64 in ``0..L-1``.
    """
    dev = pos.device
    if dev.type == "cpu":
        x = pos.detach().double().numpy() * np.sqrt(scale.double().numpy())  # (n, 8) scaled
        tree = cKDTree(x[rows.numpy()], balanced_tree=False)
        _, at = tree.query(x, 1, workers=-1)  # (n,) nearest landmark (ties: the tree's order)
        assign = torch.from_numpy(np.asarray(at, np.int64))
    else:
        p = pos.float().contiguous()
        s = scale.float().to(dev)
        knn = knn_triton if triton_available() else knn_reference
        _, idx = knn(p, p.index_select(0, rows).contiguous(), 1, math.inf, s)
        assign = idx[:, 0].long()
    assign[rows] = torch.arange(rows.numel(), device=dev)  # a landmark is in its own cell (duplicates)
    return assign
