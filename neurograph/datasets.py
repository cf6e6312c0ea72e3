"""Small real data sets as 8-D signals (scikit-learn ships them: no download).

Each loader returns ``(x [n, 8] float32, labels [n] int64)``: the features are standardised, projected
to at most 8 principal components (zero-padded to 8 when a data set has fewer features), and scaled so
that every point lies in ``[-0.9, 0.9]^8``, inside the default CDNA box. The projection is deterministic.
"""

from __future__ import annotations

import numpy as np

from neurograph.space import DIM

__all__ = ["DATASETS", "blobs_8d", "digits_8d", "iris_8d", "load"]


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


DATASETS = {"digits": digits_8d, "iris": iris_8d, "blobs": blobs_8d}


def load(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Load a data set by name (``digits``, ``iris``, ``blobs``)."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    return DATASETS[name]()
