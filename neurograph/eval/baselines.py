"""Clustering baselines, run on the same 8-D inputs as the engine: k-means, HDBSCAN, a self-organising map.

Each returns a label array ``[n]`` (``-1``: noise, HDBSCAN only). scikit-learn's ``KMeans`` and
``HDBSCAN`` and ``minisom``'s ``MiniSom`` do the work (imported when called); every run is seeded.
"""

from __future__ import annotations

import numpy as np

__all__ = ["hdbscan_labels", "kmeans_labels", "som_labels"]


def kmeans_labels(x: np.ndarray, k: int, seed: int = 0, n_init: int = 10) -> np.ndarray:
    """k-means (k-means++ seeding, ``n_init`` restarts). Shapes: ``[n, 8] -> [n]``."""
    from sklearn.cluster import KMeans

    k = max(1, min(int(k), len(x)))
    return KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit_predict(x).astype(np.int64)


def hdbscan_labels(x: np.ndarray, min_cluster_size: int = 5, min_samples: int | None = None) -> np.ndarray:
    """HDBSCAN (scikit-learn); noise is -1. Shapes: ``[n, 8] -> [n]``."""
    from sklearn.cluster import HDBSCAN

    model = HDBSCAN(min_cluster_size=max(2, int(min_cluster_size)), min_samples=min_samples, copy=True)
    return model.fit_predict(x).astype(np.int64)


def som_labels(
    x: np.ndarray,
    shape: tuple[int, int],
    seed: int = 0,
    iterations: int = 5000,
    sigma: float = 1.0,
    learning_rate: float = 0.5,
) -> np.ndarray:
    """MiniSom: the best-matching unit of each sample (PCA-initialised weights, random-order training).

    Shapes:
        ``[n, 8] -> [n]`` unit numbers ``row * shape[1] + col``.
    """
    from minisom import MiniSom

    rows, cols = shape
    som = MiniSom(
        rows,
        cols,
        x.shape[1],
        sigma=min(sigma, max(rows, cols) / 2),
        learning_rate=learning_rate,
        random_seed=seed,
    )
    if rows > 1 and cols > 1:
        som.pca_weights_init(x)
    else:
        som.random_weights_init(x)
    som.train_random(x, iterations)
    w = som.get_weights().reshape(rows * cols, -1)  # (units, 8)
    d = ((x[:, None, :] - w[None, :, :]) ** 2).sum(-1)  # (n, units)
    return d.argmin(1).astype(np.int64)
