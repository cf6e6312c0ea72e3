"""What tokens stand for: labels, payloads and a bounded sample of the signals behind each token.

A token's geometry lives in :class:`~neurograph.state.TokenState`; what it *means* lives here, on the host,
never in the hot tensors (the dynamics, the kNN and the batch emit never read it). Every accepted signal
has an id: the engine tick it happened at (row ``i`` of a batch: ``tick + i``; a stream of a data set
emitted in order from a fresh engine has signal id = row number). For every token slot :class:`TokenMemory`
keeps

- ``origin [C] int64``: the signal that created the token (-1: none, e.g. ``add_tokens`` or a field);
- ``label [C] int32``: the code of that signal's label (-1: none); codes index :attr:`TokenMemory.names`;
- ``resonances [C] int32``: how many later signals resonated with the token (it was their result token);
- ``sample [C, R] int64``: a uniform sample of at most ``R`` of those signals (reservoir sampling,
  Vitter's algorithm R, ``R`` = CDNA ``memory_sample``), -1 padded;
- the counts of the labels of the resonating signals, as sparse ``(slot, label) -> count`` pairs.

That is ``24 + 8 R`` bytes per token (56 B at the default ``R = 4``) plus 12 B per distinct (token, label)
pair of resonating signals; ``scripts/bench_memory.py`` measures it at 1e6 tokens.

The labels are interned (a table of distinct strings, each stored once). Payloads are kept once, in a
side store keyed by signal id, for the signals a token still refers to: its origin and the members of
its sample; a signal that drops out of a sample takes its payload with it. A payload is stored as bytes:
a ``str`` as UTF-8 (tag ``s``), anything else as canonical JSON (tag ``j``: sorted keys, no NaN), so that
encoding is deterministic and the persistence log replays byte for byte.

The reservoir's random draws come from a hash of the signal id and a salt (the engine seed), not from a
generator: replaying the log rebuilds the same samples, and a restart needs no generator state. For the
``n``-th resonating signal (``n > R``) the draw is ``j = h(signal) mod n``; it replaces entry ``j`` when
``j < R``. Every signal of a token's stream is then in its sample with probability ``R / n``
(``tests/test_memory.py`` checks this with a chi-square test).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["TokenMemory", "decode_payload", "encode_payload", "text_of"]

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
# canonical JSON, built once (json.dumps would rebuild an encoder for these options on every call)
_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _mix(signal: np.ndarray, salt: int) -> np.ndarray:
    """splitmix64 of ``signal`` (int64) salted: uniform 64-bit draws, one per signal (uint64)."""
    with np.errstate(over="ignore"):
        z = signal.astype(np.uint64) * _GOLDEN + np.uint64(salt & 0xFFFFFFFFFFFFFFFF)
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        return z ^ (z >> np.uint64(31))


def _mix_one(signal: int, salt: int) -> int:
    """:func:`_mix` of one signal, on Python ints (the same 64-bit draw)."""
    mask = 0xFFFFFFFFFFFFFFFF
    z = (signal * 0x9E3779B97F4A7C15 + (salt & mask)) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


def encode_payload(value: Any) -> bytes:
    """The stored form of a payload: ``b"s" + utf-8`` for a str, ``b"j" + canonical JSON`` otherwise.

    Raises:
        TypeError, ValueError: ``value`` is not JSON-able (NaN and infinities are not JSON).
    """
    if isinstance(value, str):
        return b"s" + value.encode("utf-8")
    return b"j" + _JSON.encode(value).encode("utf-8")


def decode_payload(blob: bytes | None) -> Any:
    """The payload back from :func:`encode_payload` (``None`` stays ``None``)."""
    if blob is None:
        return None
    if blob[:1] == b"s":
        return blob[1:].decode("utf-8")
    return json.loads(blob[1:].decode("utf-8"))


def text_of(payload: Any) -> str | None:
    """The text a payload carries: the payload itself when it is a str, its ``"text"`` entry when it is a
    dict with a str there, else ``None``."""
    if isinstance(payload, str):
        return payload
    if isinstance(payload, dict) and isinstance(payload.get("text"), str):
        return payload["text"]
    return None


class TokenMemory:
    """Labels, payloads and signal samples of the token slots (see the module docstring).

    Args:
        sample_size: ``R``, the most resonating signals sampled per token.
        salt: salt of the reservoir's hash draws (the engine seed).
        keep_payloads: ``False`` keeps no payloads at all (labels and signal ids are still kept).
    """

    def __init__(self, sample_size: int = 4, salt: int = 0, keep_payloads: bool = True) -> None:
        self.salt = int(salt)
        self.keep_payloads = bool(keep_payloads)
        self.names: list[str] = []  # label code -> label
        self._codes: dict[str, int] = {}
        self.origin = np.full(0, -1, np.int64)
        self.label = np.full(0, -1, np.int32)
        self.resonances = np.zeros(0, np.int32)
        self.sample = np.full((0, int(sample_size)), -1, np.int64)
        self._pair_keys = np.zeros(0, np.int64)  # sorted slot << 32 | label code
        self._pair_counts = np.zeros(0, np.int64)
        self._pending: list[np.ndarray] = []  # keys not merged yet
        self._pending_n = 0
        self.kept: dict[int, tuple[int, bytes | None]] = {}  # signal id -> (label code, payload bytes)
        self.payload_bytes = 0  # bytes of the kept payloads

    # --- shape --------------------------------------------------------------------------------------
    @property
    def sample_size(self) -> int:
        """``R``: the most resonating signals sampled per token."""
        return int(self.sample.shape[1])

    @property
    def capacity(self) -> int:
        return int(self.origin.shape[0])

    def ensure(self, capacity: int, exact: bool = False) -> None:
        """Room for ``capacity`` slots, new rows empty: exactly that many with ``exact`` (the engine keeps
        the memory at the token store's capacity), else at least doubling."""
        cap = self.capacity
        if capacity <= cap:
            return
        new = capacity if exact else max(capacity, 2 * cap, 1024)
        self.origin = np.concatenate([self.origin, np.full(new - cap, -1, np.int64)])
        self.label = np.concatenate([self.label, np.full(new - cap, -1, np.int32)])
        self.resonances = np.concatenate([self.resonances, np.zeros(new - cap, np.int32)])
        pad = np.full((new - cap, self.sample_size), -1, np.int64)
        self.sample = np.concatenate([self.sample, pad])

    def set_sample_size(self, size: int) -> None:
        """Change ``R``: a smaller sample keeps its first ``size`` entries (still uniform: the entries of a
        reservoir are exchangeable) and drops the payloads of the rest; a larger one fills from later
        signals."""
        size = int(size)
        r = self.sample_size
        if size < r:
            self._forget(self.sample[:, size:].reshape(-1))
            self.sample = np.ascontiguousarray(self.sample[:, :size])
        elif size > r:
            pad = np.full((self.capacity, size - r), -1, np.int64)
            self.sample = np.concatenate([self.sample, pad], axis=1)

    def nbytes(self) -> int:
        """Bytes of the per-slot arrays and the label pairs (payloads and label strings aside)."""
        self._merge()
        arrays = (self.origin, self.label, self.resonances, self.sample, self._pair_keys, self._pair_counts)
        return int(sum(a.nbytes for a in arrays))

    # --- labels -------------------------------------------------------------------------------------
    def intern(self, labels: Sequence[str | None]) -> np.ndarray:
        """Codes of ``labels`` (new ones added to the table); ``None`` -> -1.

        Shapes:
            ``[B]`` -> ``[B]`` int32.
        """
        codes = self._codes
        out = np.empty(len(labels), np.int32)
        for i, name in enumerate(labels):
            if name is None:
                out[i] = -1
                continue
            code = codes.get(name)
            if code is None:
                code = codes[name] = len(self.names)
                self.names.append(name)
            out[i] = code
        return out

    # --- recording ----------------------------------------------------------------------------------
    def record(
        self,
        first_signal: int,
        slots: np.ndarray,
        novel: np.ndarray,
        labels: np.ndarray | None = None,
        payloads: Sequence[bytes | None] | None = None,
    ) -> None:
        """Remember ``B`` accepted signals, ids ``first_signal + i``, in order.

        Args:
            first_signal: id of row 0 (the engine tick before the call).
            slots: ``[B]`` slot of each row's result token (the new token or the resonating one).
            novel: ``[B]`` bool, the row created its token.
            labels: ``[B]`` int32 label codes (-1 none), or ``None`` for no labels.
            payloads: ``B`` encoded payloads (``None`` entries: none), or ``None``.
        """
        b = int(slots.shape[0])
        if b == 0:
            return
        if b == 1:  # one emit: the same steps on scalars (the arrays' setup would dominate)
            blob = payloads[0] if payloads is not None and self.keep_payloads else None
            lab = int(labels[0]) if labels is not None else -1
            self._record_one(int(first_signal), int(slots[0]), bool(novel[0]), lab, blob)
            return
        slots = np.asarray(slots, np.int64)
        novel = np.asarray(novel, bool)
        self.ensure(int(slots.max()) + 1)
        sig = first_signal + np.arange(b, dtype=np.int64)
        if labels is None:
            labels = np.full(b, -1, np.int32)
        keep = payloads if self.keep_payloads else None
        new = np.nonzero(novel)[0]
        if new.size:
            self.origin[slots[new]] = sig[new]
            self.label[slots[new]] = labels[new]
            self._keep(sig[new], labels[new], keep, new)
        fam = np.nonzero(~novel)[0]
        if fam.size == 0:
            return
        s = slots[fam]
        lab = labels[fam]
        has = lab >= 0
        if has.any():
            self._pending.append((s[has] << 32) | lab[has].astype(np.int64))
            self._pending_n += int(has.sum())
            if self._pending_n > max(65_536, self._pair_keys.size // 4):
                self._merge()
        self._sample(sig[fam], s, lab, keep, fam)

    def _record_one(self, sig: int, slot: int, novel: bool, lab: int, blob: bytes | None) -> None:
        """:meth:`record` of one signal (the same state as a batch of one; tested against it)."""
        self.ensure(slot + 1)
        if novel:
            self.origin[slot] = sig
            self.label[slot] = lab
        else:
            if lab >= 0:
                self._pending.append(np.array([(slot << 32) | lab], np.int64))
                self._pending_n += 1
                if self._pending_n > max(65_536, self._pair_keys.size // 4):
                    self._merge()
            n = int(self.resonances[slot]) + 1  # this signal is the slot's n-th
            self.resonances[slot] = n
            r = self.sample_size
            pos = n - 1 if n <= r else _mix_one(sig, self.salt) % n
            if pos >= r:
                return
            old = int(self.sample[slot, pos])
            if old >= 0:
                self._forget(np.array([old]))
            self.sample[slot, pos] = sig
        if blob is not None or lab >= 0:
            self.kept[sig] = (lab, blob)
            if blob is not None:
                self.payload_bytes += len(blob)

    def _sample(
        self,
        sig: np.ndarray,
        slots: np.ndarray,
        labels: np.ndarray,
        payloads: Sequence[bytes | None] | None,
        rows: np.ndarray,
    ) -> None:
        """Algorithm R over the resonating rows, in order, several rows per slot allowed."""
        r = self.sample_size
        order = np.argsort(slots, kind="stable")  # rows of one slot together, in signal order
        s = slots[order]
        first = np.ones(s.size, bool)
        first[1:] = s[1:] != s[:-1]
        start = np.maximum.accumulate(np.where(first, np.arange(s.size), 0))
        rank = np.arange(s.size) - start  # 0, 1, ... within a slot
        n = self.resonances[s].astype(np.int64) + rank + 1  # this signal is the slot's n-th
        np.add.at(self.resonances, s, 1)
        if r == 0:
            return
        draw = (_mix(sig[order], self.salt) % n.astype(np.uint64)).astype(np.int64)
        pos = np.where(n <= r, n - 1, draw)
        ok = pos < r
        if not ok.any():
            return
        w = np.nonzero(ok)[0]  # in slot order, then signal order: the last write of a cell wins
        cell = s[w] * r + pos[w]
        _, first_from_end = np.unique(cell[::-1], return_index=True)
        w = np.sort(w[w.size - 1 - first_from_end])  # each cell's last write
        flat = self.sample.reshape(-1)
        cells = s[w] * r + pos[w]
        self._forget(flat[cells])
        flat[cells] = sig[order][w]
        src = order[w]
        self._keep(sig[src], labels[src], payloads, rows[src])

    def _keep(
        self, sig: np.ndarray, labels: np.ndarray, payloads: Sequence[bytes | None] | None, rows: np.ndarray
    ) -> None:
        """Keep the label and payload of signals a token now refers to (only those that carry either)."""
        kept = self.kept
        if payloads is None:
            has = np.nonzero(labels >= 0)[0]
            for i in has.tolist():
                kept[int(sig[i])] = (int(labels[i]), None)
            return
        for i, row in enumerate(rows.tolist()):
            blob = payloads[row]
            code = int(labels[i])
            if blob is None and code < 0:
                continue
            kept[int(sig[i])] = (code, blob)
            if blob is not None:
                self.payload_bytes += len(blob)

    def _forget(self, signals: np.ndarray) -> None:
        """Drop the kept labels and payloads of signals no token refers to any more."""
        kept = self.kept
        if not kept:
            return
        for sid in signals[signals >= 0].tolist():
            entry = kept.pop(sid, None)
            if entry is not None and entry[1] is not None:
                self.payload_bytes -= len(entry[1])

    def _merge(self) -> None:
        """Fold the pending (slot, label) keys into the sorted pair counts."""
        if not self._pending:
            return
        keys = np.concatenate([self._pair_keys, *self._pending])
        weights = np.concatenate([self._pair_counts, np.ones(self._pending_n, np.int64)])
        uniq, inverse = np.unique(keys, return_inverse=True)
        self._pair_keys = uniq
        self._pair_counts = np.bincount(inverse, weights=weights, minlength=uniq.size).astype(np.int64)
        self._pending, self._pending_n = [], 0

    # --- reading ------------------------------------------------------------------------------------
    def payload(self, signal: int) -> Any:
        """The payload of a kept signal (``None``: none, or no longer kept)."""
        entry = self.kept.get(int(signal))
        return decode_payload(entry[1]) if entry is not None else None

    def signal_label(self, signal: int) -> str | None:
        """The label of a kept signal (``None``: none, or no longer kept)."""
        entry = self.kept.get(int(signal))
        return self.names[entry[0]] if entry is not None and entry[0] >= 0 else None

    def pairs(self, slots: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Label counts of the resonating signals as ``(slot, code, count)`` arrays (of ``slots`` only)."""
        self._merge()
        slot = self._pair_keys >> 32
        code = (self._pair_keys & 0xFFFFFFFF).astype(np.int64)
        if slots is not None:
            keep = np.isin(slot, slots)
            return slot[keep], code[keep], self._pair_counts[keep]
        return slot, code, self._pair_counts.copy()

    def label_counts(self, slots: np.ndarray) -> Counter[str]:
        """Labels of every signal behind ``slots``: their origins' and their resonating signals'."""
        counts = self._code_counts(slots)
        return Counter({self.names[i]: int(counts[i]) for i in np.nonzero(counts)[0].tolist()})

    def majority_of(self, slots: np.ndarray) -> str | None:
        """The most frequent label of the signals behind ``slots`` (ties: the label seen first, as
        :meth:`majority`); ``None`` when none carries one."""
        counts = self._code_counts(slots)
        return self.names[int(counts.argmax())] if counts.any() else None

    def _code_counts(self, slots: np.ndarray) -> np.ndarray:
        """``[labels]`` signals behind ``slots`` per label code."""
        slots = np.asarray(slots, np.int64)
        slots = slots[slots < self.capacity]
        own = self.label[slots]
        counts = np.bincount(own[own >= 0], minlength=len(self.names)).astype(np.int64)
        _, code, count = self.pairs(slots)
        if code.size:
            counts += np.bincount(code, weights=count, minlength=len(self.names)).astype(np.int64)
        return counts

    def token(self, slot: int) -> dict[str, Any]:
        """What one slot stands for: origin signal, label, payload, resonances, the sample (signal ids
        with their labels and payloads) and the label counts."""
        if slot >= self.capacity:
            return {"signal": None, "label": None, "payload": None, "resonances": 0, "sample": [],
                    "label_counts": {}}  # fmt: skip
        origin = int(self.origin[slot])
        code = int(self.label[slot])
        sample = [int(s) for s in self.sample[slot] if s >= 0]
        return {
            "signal": origin if origin >= 0 else None,
            "label": self.names[code] if code >= 0 else None,
            "payload": self.payload(origin) if origin >= 0 else None,
            "resonances": int(self.resonances[slot]),
            "sample": [
                {"signal": s, "label": self.signal_label(s), "payload": self.payload(s)} for s in sample
            ],
            "label_counts": dict(self.label_counts(np.array([slot]))),
        }

    def texts(self, slots: np.ndarray, sampled: bool = False) -> list[str | None]:
        """The text of each slot's origin payload (see :func:`text_of`); with ``sampled``, the texts of
        the origin and the sample joined by newlines (``None`` where there is none)."""
        out: list[str | None] = []
        for slot in np.asarray(slots, np.int64).tolist():
            if slot >= self.capacity:
                out.append(None)
                continue
            sigs = [int(self.origin[slot])]
            if sampled:
                sigs += [int(s) for s in self.sample[slot] if s >= 0]
            parts = [t for t in (text_of(self.payload(s)) for s in sigs if s >= 0) if t is not None]
            out.append("\n".join(parts) if parts else None)
        return out

    def majority(self, count: int, level: np.ndarray, parent: np.ndarray) -> np.ndarray:
        """Label code of every slot ``[:count]``: its origin's for level-0 tokens, the most frequent label
        of the signals below it for fields (ties to the smaller code), -1 for none.

        Shapes:
            level, parent ``[count]`` -> ``[count]`` int32.
        """
        codes = np.full(count, -1, np.int32)
        m = min(count, self.capacity)
        codes[:m] = self.label[:m]
        if count == 0 or not self.names or not (level > 0).any():
            return codes
        own = np.nonzero(codes >= 0)[0]
        slot, code, cnt = self.pairs()
        inside = slot < count
        leaf_slot = np.concatenate([own, slot[inside]])
        leaf_code = np.concatenate([codes[own].astype(np.int64), code[inside]])
        weight = np.concatenate([np.ones(own.size, np.int64), cnt[inside]])
        keep = level[leaf_slot] == 0
        leaf_slot, leaf_code, weight = leaf_slot[keep], leaf_code[keep], weight[keep]
        top = int(level.max())
        holder = leaf_slot
        for lv in range(1, top + 1):
            holder = np.where(holder >= 0, parent[np.maximum(holder, 0)], -1)
            ok = holder >= 0
            if not ok.any():
                break
            n_codes = len(self.names)
            key = holder[ok] * n_codes + leaf_code[ok]
            uniq, inverse = np.unique(key, return_inverse=True)
            tot = np.bincount(inverse, weights=weight[ok])
            field = uniq // n_codes
            lab = uniq % n_codes
            order = np.lexsort((lab, -tot, field))  # per field: largest count first, then smallest code
            first = np.ones(order.size, bool)
            first[1:] = field[order][1:] != field[order][:-1]
            best = order[first]
            sel = level[field[best]] == lv
            codes[field[best][sel]] = lab[best][sel].astype(np.int32)
        return codes

    # --- persistence --------------------------------------------------------------------------------
    def state_dict(self, count: int) -> dict[str, np.ndarray]:
        """Arrays of the first ``count`` slots, the label pairs and the kept signals (for snapshots)."""
        self._merge()
        m = min(count, self.capacity)
        sigs = np.array(sorted(self.kept), np.int64)
        labels = np.array([self.kept[s][0] for s in sigs.tolist()], np.int32)
        blobs = [self.kept[s][1] for s in sigs.tolist()]
        lengths = np.array([-1 if b is None else len(b) for b in blobs], np.int64)
        blob = np.frombuffer(b"".join(b for b in blobs if b is not None), np.uint8)
        return {
            "origin": self.origin[:m].copy(),
            "label": self.label[:m].copy(),
            "resonances": self.resonances[:m].copy(),
            "sample": self.sample[:m].copy(),
            "pair_keys": self._pair_keys.copy(),
            "pair_counts": self._pair_counts.copy(),
            "kept_signals": sigs,
            "kept_labels": labels,
            "kept_lengths": lengths,
            "kept_blob": blob.copy(),
        }

    def load_state_dict(self, arrays: dict[str, np.ndarray], names: Sequence[str]) -> None:
        """Put back what :meth:`state_dict` saved, with the label table ``names``."""
        self.names = list(names)
        self._codes = {name: i for i, name in enumerate(self.names)}
        m = int(arrays["origin"].shape[0])
        r = int(arrays["sample"].shape[1]) if arrays["sample"].ndim == 2 else self.sample_size
        self.origin = np.full(0, -1, np.int64)
        self.label = np.full(0, -1, np.int32)
        self.resonances = np.zeros(0, np.int32)
        self.sample = np.full((0, r), -1, np.int64)
        self.ensure(max(m, 1))
        self.origin[:m] = arrays["origin"]
        self.label[:m] = arrays["label"]
        self.resonances[:m] = arrays["resonances"]
        self.sample[:m] = arrays["sample"].reshape(m, r)
        self._pair_keys = arrays["pair_keys"].astype(np.int64)
        self._pair_counts = arrays["pair_counts"].astype(np.int64)
        self._pending, self._pending_n = [], 0
        self.kept, self.payload_bytes = {}, 0
        blob = arrays["kept_blob"].tobytes()
        offset = 0
        for sid, code, length in zip(
            arrays["kept_signals"].tolist(), arrays["kept_labels"].tolist(), arrays["kept_lengths"].tolist()
        ):
            data = None
            if length >= 0:
                data = blob[offset : offset + length]
                offset += length
                self.payload_bytes += length
            self.kept[int(sid)] = (int(code), data)
