"""Data sources behind one interface: :func:`load_source` turns ``cfg.dataset`` into a :class:`Source`.

A :class:`Source` holds ``x [n, 8] float32`` (inside ``[-0.9, 0.9]^8`` for the bundled data), the labels
``[n]`` (or ``[n, L]`` for the nested groups, column ``-1`` the finest level; ``None`` when a user's file
has no label column), optional label names, and the event type its signals are emitted under;
:meth:`Source.batches` cuts it into ``emit_batch`` calls.

- ``digits``, ``iris``, ``blobs``, ``nested``: :mod:`neurograph.datasets` (scikit-learn's bundled data,
  Gaussian blobs, groups of groups).
- ``file``: a user's ``.npy`` (a 2-D array), ``.csv`` or ``.parquet`` (``columns`` chosen in the config,
  ``label_column`` optional). Standardised, projected to 8-D by PCA when wider (zero-padded when
  narrower) and scaled into ``[-0.9, 0.9]``; the projection (mean, scale, components, factor) is saved as
  ``projection.npz`` in the run directory, so new rows can be mapped the same way.
- ``text``: labelled short texts (the bundled ``topics.csv``: 8 topics x 40 sentences, or ``path``, a CSV
  with ``topic,text`` columns) through a gateway encoder (``hashed``, ``semantic``; with ``encoder.fit``
  the semantic projection is fitted on the data set's own texts, unsupervised, and saved in the run dir).
- ``synthetic``: ``n`` points around ``centers`` Gaussian clusters, generated batch by batch from the seed
  (scale runs: 1e5 on a CPU, 1e6 and more on a GPU).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from neurograph.errors import InvalidArgument
from neurograph.experiments.config import DatasetConfig, EncoderConfig
from neurograph.space import DIM

__all__ = ["Source", "load_source", "project_features", "topics_corpus"]


@dataclass
class Source:
    """Signals to stream, with their labels (module docstring)."""

    name: str  # what the signals are (digits, file:data.csv, text:hashed, ...)
    x: np.ndarray  # [n, 8] float32
    labels: np.ndarray | None  # [n] or [n, L] int64; None: no labels
    label_names: list[str] | None = None  # name of each label value (text topics)
    event_type: str = "signal.input.external.dataset.sample"  # the emit type of the signals
    texts: list[str] | None = None  # the text of each row (text sources): kept as the signals' payloads
    rows: np.ndarray | None = None  # [n] each row's row in the data as loaded (before shuffling)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def level1_labels(self) -> np.ndarray | None:
        """The labels the level-1 fields are scored against (the finest column of nested labels)."""
        if self.labels is None:
            return None
        return self.labels if self.labels.ndim == 1 else self.labels[:, -1]

    def label_strings(self, rows: np.ndarray) -> list[str] | None:
        """The level-1 label of each of ``rows`` as a string (a topic's name, else the class number),
        given to the engine as the signals' labels; ``None`` without labels."""
        labels = self.level1_labels
        if labels is None:
            return None
        names = self.label_names
        return [names[v] if names and 0 <= v < len(names) else str(v) for v in labels[rows].tolist()]

    def payloads(self, rows: np.ndarray) -> list[Any]:
        """What each of ``rows`` stood for, kept by the engine: its text, else its row in the data."""
        if self.texts is not None:
            return [self.texts[i] for i in rows.tolist()]
        where = self.rows[rows] if self.rows is not None else rows
        return [{"row": int(i)} for i in where.tolist()]

    def batches(self, batch_size: int) -> Iterator[np.ndarray]:
        """Row indices of each ``emit_batch`` call, in order."""
        for start in range(0, len(self), batch_size):
            yield np.arange(start, min(start + batch_size, len(self)))


def topics_corpus(
    path: str | None = None, *, bundled: str = "topics.csv"
) -> tuple[list[str], np.ndarray, list[str]]:
    """The labelled texts: ``(texts, labels [n], topic names)`` from ``path`` or a bundled CSV.

    Bundled: ``topics.csv`` (320 sentences, 8 topics x 40) and ``topics_large.csv`` (1,040: the same 320
    first, then 90 more a topic, for the text evaluation at 1,000 sentences).
    """
    import pandas as pd

    if path:
        frame = pd.read_csv(path)
    else:
        with resources.files("neurograph.experiments").joinpath(bundled).open("r", encoding="utf-8") as fh:
            frame = pd.read_csv(fh)
    for col in ("topic", "text"):
        if col not in frame.columns:
            raise InvalidArgument("dataset.path", path, f"a text CSV needs columns topic,text; no {col!r}")
    names = sorted(frame["topic"].astype(str).unique())
    labels = frame["topic"].astype(str).map({n: i for i, n in enumerate(names)}).to_numpy(np.int64)
    return frame["text"].astype(str).tolist(), labels, names


def project_features(features: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Standardise, PCA to 8-D when wider (pad when narrower), scale into ``[-0.9, 0.9]``.

    Returns:
        ``(x [n, 8] float32, projection)``; ``x = ((f - mean) / scale) @ components.T * factor`` padded.
    """
    f = features.astype(np.float64)
    mean = f.mean(0)
    scale = f.std(0)
    scale[scale == 0] = 1.0
    z = (f - mean) / scale  # (n, d)
    if z.shape[1] > DIM:
        from sklearn.decomposition import PCA

        pca = PCA(n_components=DIM, svd_solver="full", random_state=0).fit(z)
        components = pca.components_  # (8, d)
        z = (z - pca.mean_) @ components.T  # (n, 8)
        mean = mean + pca.mean_ * scale  # fold the PCA's centring into the mean
    else:
        components = np.eye(z.shape[1])  # (d, d)
    x = np.pad(z, ((0, 0), (0, DIM - z.shape[1])))  # (n, 8)
    peak = float(np.abs(x).max()) or 1.0
    factor = 0.9 / peak
    proj = {"mean": mean, "scale": scale, "components": components, "factor": np.asarray(factor)}
    return (x * factor).astype(np.float32), proj


def _read_file(d: DatasetConfig) -> tuple[np.ndarray, np.ndarray | None]:
    import pandas as pd

    path = Path(d.path).expanduser()  # type: ignore[arg-type]
    suffix = path.suffix.lower()
    if suffix == ".npy":
        arr = np.load(path, allow_pickle=False)
        if arr.ndim != 2:
            raise InvalidArgument(
                "dataset.path", str(path), f"a .npy file needs a 2-D array; got {arr.shape}"
            )
        return arr.astype(np.float64), None
    frame = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    wanted = list(d.columns) if d.columns else None
    for col in [*(wanted or []), *([d.label_column] if d.label_column else [])]:
        if col not in frame.columns:
            raise InvalidArgument(
                "dataset.columns", col, f"not a column of {path.name}: {list(frame.columns)}"
            )
    if wanted is None:
        wanted = [c for c in frame.select_dtypes("number").columns if c != d.label_column]
    if not wanted:
        raise InvalidArgument("dataset.columns", d.columns, f"{path.name} has no numeric feature columns")
    labels = None
    if d.label_column:
        _, labels = np.unique(frame[d.label_column].astype(str).to_numpy(), return_inverse=True)
        labels = labels.astype(np.int64)
    return frame[wanted].to_numpy(np.float64), labels


def _synthetic(n: int, centers: int, spread: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Clusters around ``centers`` centres, generated in blocks of 65,536 rows from the seed."""
    rng = np.random.default_rng(seed)
    c = rng.uniform(-0.7, 0.7, (centers, DIM))  # (centers, 8)
    x = np.empty((n, DIM), np.float32)
    labels = np.empty(n, np.int64)
    block = 1 << 16
    for i, start in enumerate(range(0, n, block)):
        r = np.random.default_rng((seed, i))
        m = min(block, n - start)
        lab = r.integers(0, centers, m)
        x[start : start + m] = np.clip(c[lab] + spread * r.standard_normal((m, DIM)), -0.95, 0.95)
        labels[start : start + m] = lab
    return x, labels


def _fitted_vectors(enc: Any, texts: list[str], run_dir: Path | None) -> np.ndarray:
    """``texts`` through ``enc`` with its 8-D projection fitted on them (``encoder.fit``: the semantic
    encoder only; a PCA of the texts' own embeddings, no labels; each text embedded once), the projection
    saved as ``semantic_pca.npz`` in the run directory (a temporary one without). Shapes: ``-> [n, 8]``."""
    from neurograph.gateway.semantic import SemanticEncoder

    if not isinstance(enc, SemanticEncoder):
        raise InvalidArgument(
            "encoder.fit", True, f"only the semantic encoder has a projection to fit, not {enc.name}"
        )
    if run_dir is None:
        import tempfile

        run_dir = Path(tempfile.mkdtemp(prefix="neurograph-"))
    target = Path(run_dir) / "semantic_pca.npz"
    return SemanticEncoder.fit_encode(texts, target, device=enc.device, batch_size=enc.batch_size)[1]


def load_source(
    d: DatasetConfig, encoder: EncoderConfig, seed: int = 0, run_dir: Path | None = None
) -> Source:
    """The data of ``cfg.dataset`` (module docstring), shuffled and cut to ``n`` when asked."""
    from neurograph import datasets

    names = None
    event = f"signal.input.external.dataset.{d.name}"
    if d.name in ("digits", "iris"):
        x, labels = datasets.load(d.name)
    elif d.name == "blobs":
        x, labels = datasets.blobs_8d(n=d.n or 2000, centers=d.centers, spread=d.spread, seed=seed)
    elif d.name == "nested":
        x, labels = datasets.nested_groups(tuple(d.branching), n=d.n or 3000, seed=seed)
    elif d.name == "synthetic":
        x, labels = _synthetic(d.n or 100_000, d.centers, d.spread, seed)
    elif d.name == "file":
        features, labels = _read_file(d)
        x, proj = project_features(features)
        if run_dir is not None:
            np.savez(Path(run_dir) / "projection.npz", **proj)
    elif d.name == "text":
        from neurograph.gateway.encoders import make_encoder

        texts, labels, names = topics_corpus(d.path)
        enc = make_encoder({"name": encoder.name, **dict(encoder.kwargs)})
        x = _fitted_vectors(enc, texts, run_dir) if encoder.fit else enc.encode_batch(texts)
        x = np.asarray(x, np.float32)  # (n, 8)
        event = f"signal.input.external.text.{encoder.name}"
    else:
        raise InvalidArgument("dataset.name", d.name, "unknown data source")
    order = np.arange(len(x))  # each row's row in the data as loaded
    if d.shuffle:
        order = np.random.default_rng(seed).permutation(len(x))
    if d.n is not None and d.n < len(x):
        order = order[: d.n]
    x = x[order]
    labels = labels[order] if labels is not None else None
    texts = [texts[i] for i in order.tolist()] if d.name == "text" else None
    label = d.name if d.name != "file" else f"file:{Path(d.path).name}"  # type: ignore[arg-type]
    return Source(label, np.ascontiguousarray(x, np.float32), labels, names, event, texts, order)
