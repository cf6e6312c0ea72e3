"""Fields describe themselves: what the signals below a field were (:meth:`Hierarchy.describe`).

A field stands for the level-0 tokens below it, and each of those for the signals that made it and that
later resonated with it (:mod:`neurograph.memory`). A :class:`FieldDescription` gathers

- ``labels``: the label histogram of those signals (origins and resonating signals, exact counts);
- ``exemplars``: the level-0 tokens nearest the field's centre (its position), with their labels and
  payloads;
- ``terms``: for text payloads, the terms that set the field apart from the other fields of its level:
  class-based TF-IDF, i.e. scikit-learn's ``TfidfVectorizer`` over one document per field (the texts of
  its tokens' signals joined), ``sublinear_tf``, English stop words dropped, the field's row ranked;
- ``name``: the top label when the signals carry labels, else the top three terms, else ``field <id>``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["FieldDescription", "distinguishing_terms", "field_name"]


@dataclass(frozen=True)
class FieldDescription:
    """What one field contains (see the module docstring).

    Attributes:
        id: the field's token id. level: its level. name: see :func:`field_name`.
        size: children (tokens of the level below). tokens: level-0 tokens below it.
        mass: the field token's mass.
        labels: label -> number of signals below the field carrying it, most frequent first.
        exemplars: up to ``k`` level-0 tokens nearest the field's centre: id, distance, label, payload,
            text (a DataFrame).
        terms: the field's distinguishing terms, best first (empty without text payloads).
    """

    id: int
    level: int
    name: str
    size: int
    tokens: int
    mass: float
    labels: dict[str, int]
    exemplars: pd.DataFrame = field(repr=False)
    terms: list[str]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (exemplars as a list of records)."""
        out = {k: getattr(self, k) for k in ("id", "level", "name", "size", "tokens", "mass", "labels")}
        out["terms"] = list(self.terms)
        out["exemplars"] = self.exemplars.to_dict(orient="records")
        return out


def field_name(field_id: int, labels: Counter[str] | dict[str, int], terms: list[str]) -> str:
    """The top label (ties: the smaller label), else the top three terms, else ``"field <id>"``."""
    if labels:
        return min(labels.items(), key=lambda kv: (-kv[1], kv[0]))[0]
    if terms:
        return " ".join(terms[:3])
    return f"field {field_id}"


def distinguishing_terms(documents: list[str], top: int = 8) -> list[list[str]]:
    """Class-based TF-IDF: the ``top`` terms of each document against the others (empty lists where a
    document has no terms, or when there is no text at all).

    Args:
        documents: one text per field (the texts of its signals joined); ``""`` for none.
        top: terms per field.
    """
    if not any(documents):
        return [[] for _ in documents]
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(stop_words="english", sublinear_tf=True, token_pattern=r"(?u)\b[^\W\d_]{2,}\b")
    try:
        weights = vec.fit_transform(documents)
    except ValueError:  # only stop words: no vocabulary
        return [[] for _ in documents]
    vocab = vec.get_feature_names_out()
    out = []
    for row in range(weights.shape[0]):
        r = weights.getrow(row)
        if r.nnz == 0:
            out.append([])
            continue
        order = np.lexsort((vocab[r.indices], -r.data))[:top]  # weight, then alphabetical
        out.append([str(vocab[r.indices[i]]) for i in order])
    return out
