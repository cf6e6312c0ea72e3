"""Small real data sets as 8-D signals (scikit-learn ships them: no download).

Each loader returns ``(x [n, 8] float32, labels [n] int64)``: the features are standardised, projected
to at most 8 principal components (zero-padded to 8 when a data set has fewer features), and scaled so
that every point lies in ``[-0.9, 0.9]^8``, inside the default CDNA box. The projection is deterministic.
"""

from __future__ import annotations

import numpy as np

from neurograph.space import DIM

__all__ = ["DATASETS", "blobs_8d", "digits_8d", "iris_8d", "load", "nested_groups"]


def _project(features: np.ndarray) -> np.ndarray:
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    z = StandardScaler().fit_transform(features.astype(np.float64))
    n_comp = min(DIM, z.shape[1])
    x = PCA(n_components=n_comp, svd_solver="full", random_state=0).fit_transform(z)  # (n, <=8)
    x = np.pad(x, ((0, 0), (0, DIM - n_comp)))  # (n, 8)
    return (0.9 * x / np.abs(x).max()).astype(np.float32)


def digits_8d() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 handwritten digits (8x8 images, 10 classes) as 8-D signals."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return _project(d.data), d.target.astype(np.int64)


def iris_8d() -> tuple[np.ndarray, np.ndarray]:
    """The 150 iris flowers (4 features, 3 classes) as 8-D signals (4 axes zero)."""
    from sklearn.datasets import load_iris

    d = load_iris()
    return _project(d.data), d.target.astype(np.int64)


def blobs_8d(
    n: int = 2000, centers: int = 8, spread: float = 0.04, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Well-separated Gaussian blobs in 8-D (centres at least 0.6 apart), labels = blob."""
    rng = np.random.default_rng(seed)
    c = np.zeros((0, DIM))
    while len(c) < centers:  # rejection-sample well-separated centres
        cand = rng.uniform(-0.7, 0.7, DIM)
        if len(c) == 0 or np.sqrt(((c - cand) ** 2).sum(1)).min() >= 0.6:
            c = np.vstack([c, cand])
    labels = rng.integers(0, centers, n)
    x = c[labels] + spread * rng.standard_normal((n, DIM))
    return np.clip(x, -0.95, 0.95).astype(np.float32), labels.astype(np.int64)


def nested_groups(
    branching: tuple[int, ...] = (4, 5),
    n: int = 3000,
    spread: float = 0.5,
    ratio: float = 0.25,
    noise: float = 0.02,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Groups of groups in 8-D with known labels at every level (the multi-scale test of DESIGN §5).

    The top has ``branching[0]`` centres uniform in ``[-spread, spread]^8``; each centre at depth ``d`` has
    ``branching[d + 1]`` children displaced by Gaussian steps whose scale shrinks by ``ratio`` per depth;
    points are Gaussian (``noise``) around the leaves, assigned uniformly at random.

    Args:
        branching: children per node, top first: ``(4, 5)`` is 4 groups of 5 sub-groups (2 levels),
            ``(3, 3, 4)`` three levels.
        n: points.
        spread: half-width of the box of the top centres.
        ratio: scale of a level's displacements relative to the one above.
        noise: standard deviation of the points around their leaf.
        seed: seed of everything.

    Returns:
        ``(x [n, 8] float32, labels [n, L] int64)`` with ``L = len(branching)``; column ``j`` is the
        truth of hierarchy level ``L - j`` (column ``-1`` the finest groups, the level-1 fields; column 0
        the coarsest).
    """
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-spread, spread, (branching[0], DIM))
    step = spread * ratio
    for b in branching[1:]:
        kids = centres[:, None, :] + rng.normal(0, step, (centres.shape[0], b, DIM))
        centres = kids.reshape(-1, DIM)  # (nodes at this depth, 8)
        step *= ratio
    leaf = rng.integers(0, centres.shape[0], n)  # (n,)
    x = centres[leaf] + rng.normal(0, noise, (n, DIM))
    sizes = np.cumprod(branching[::-1])[::-1]  # leaves under one node of each depth, top first
    labels = np.stack([leaf // (sizes[j] // branching[j]) for j in range(len(branching))], 1)
    return x.astype(np.float32), labels.astype(np.int64)


DATASETS = {"digits": digits_8d, "iris": iris_8d, "blobs": blobs_8d}


def load(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Load a data set by name (``digits``, ``iris``, ``blobs``)."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    return DATASETS[name]()
