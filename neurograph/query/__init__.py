"""The query language (``docs/query.md``): grammar, evaluation as tensor masks, and the tables it reads.

- :mod:`neurograph.query.grammar`: the lark grammar and the parsed :class:`Query` tree, with positioned
  errors (:class:`QueryError`).
- :mod:`neurograph.query.evaluate`: :func:`run_query` over the token and edge tensors.
- :mod:`neurograph.query.tables`: the pandas views ``eng.tokens()`` and ``eng.edges()``.
"""

from neurograph.query.evaluate import EDGE_COLUMNS, TOKEN_COLUMNS, Encoder, run_query
from neurograph.query.grammar import Query, QueryError, parse_query
from neurograph.query.tables import edges_frame, tokens_frame

__all__ = [
    "EDGE_COLUMNS",
    "TOKEN_COLUMNS",
    "Encoder",
    "Query",
    "QueryError",
    "edges_frame",
    "parse_query",
    "run_query",
    "tokens_frame",
]
