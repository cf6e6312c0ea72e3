"""A plain, slow, obviously-correct emitter: the oracle the engine's fast paths are tested against.

It keeps tokens in Python lists and answers every signal by brute force over all of them, exactly as
DESIGN §3 words it: neighbours are the ``k`` nearest tokens within the radius (ties by id), a signal is
novel iff none lies within the threshold, the nearest token resonates. ``defer_moves=True`` applies the
resonance moves only at ``flush()``, which is what a batch does.
"""

from __future__ import annotations

import numpy as np


class OracleEmitter:
    def __init__(
        self, radius=0.2, threshold=0.1, k=16, lr=0.1, scale=None, lo=-1.0, hi=1.0, defer_moves=False
    ):
        self.radius, self.threshold, self.k, self.lr = radius, threshold, k, lr
        self.scale = np.ones(8) if scale is None else np.asarray(scale, float)
        self.lo, self.hi = lo, hi
        self.pos: list[np.ndarray] = []
        self.defer = defer_moves
        self.pending: list[tuple[int, np.ndarray]] = []

    def emit(self, v):
        v = np.clip(np.asarray(v, dtype=np.float32).astype(np.float64), self.lo, self.hi)
        if self.pos:
            d = np.sqrt((((np.array(self.pos) - v) ** 2) * self.scale).sum(1))
            inside = np.nonzero(d <= self.radius)[0]
            order = sorted(zip(d[inside].tolist(), inside.tolist()))[: self.k]
        else:
            order = []
        novel = not order or order[0][0] > self.threshold
        if novel:
            self.pos.append(v.astype(np.float32).astype(np.float64))
            token = len(self.pos) - 1
        else:
            token = order[0][1]
            if self.defer:
                self.pending.append((token, v))
            else:
                self._move(token, v)
        return {
            "token_id": token,
            "is_novel": novel,
            "neighbors": [i for _, i in order],
            "distances": [dd for dd, _ in order],
        }

    def _move(self, token, v):
        p = self.pos[token]
        self.pos[token] = (
            np.clip((1 - self.lr) * p + self.lr * v, self.lo, self.hi).astype(np.float32).astype(np.float64)
        )

    def flush(self):
        for token, v in self.pending:
            self._move(token, v)
        self.pending.clear()
