"""The query language: its grammar, the parsed form (:class:`Query`) and positioned errors.

A query reads like a sentence (keywords are case-insensitive, column names too)::

    find all (tokens | nodes | edges | fields)
        [where <condition>]
        [near <8 numbers> | near "<text>"  [within <r>]]
        [order by <column> [asc | desc]]
        [limit <n>] [offset <n>]

The clauses come in this order, each at most once (``where`` and ``near`` may also swap). A
*condition* combines comparisons with ``and``, ``or``, ``not`` and parentheses (``not`` binds tightest,
then ``and``, then ``or``). A comparison is ``<operand> <op> <operand>`` with ``op`` one of
``= == != <> < <= > >=`` and operands column names or literals, ``<operand> [not] in (<literal>,
...)``, or ``<column> [not] contains '<text>'`` (a substring, case-insensitive; for the ``text``
column). Literals are numbers (``3``, ``-0.25``, ``1e-3``) and strings in single or double quotes (a
backslash escapes the next character). The 8 numbers of ``near`` may be bare, comma separated, or in
``[...]`` or ``(...)``. There is no arithmetic: compare columns with literals or with other columns.

:func:`parse_query` turns text into a frozen :class:`Query` (parses are cached); ``str(query)`` gives
the canonical text, which parses back to an equal query. Which tables and columns exist is checked when
the query runs (:mod:`neurograph.query`), with the position of the offending name.

Errors: every malformed query raises :class:`QueryError` (an :class:`~neurograph.errors.InvalidQuery`)
with ``line`` and ``column`` (1-based), ``expected`` (what would have been accepted there) and a
message that shows the line with a caret under the position.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import Any

from lark import Lark, Token, Tree, UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from neurograph.errors import InvalidQuery

__all__ = [
    "And",
    "Column",
    "Compare",
    "Contains",
    "Literal",
    "Member",
    "Near",
    "Not",
    "Or",
    "Query",
    "QueryError",
]
__all__ += ["COMPARISONS", "TABLES", "parse_query"]

TABLES: tuple[str, ...] = ("tokens", "nodes", "edges", "fields")
COMPARISONS: dict[str, str] = {"=": "=", "==": "=", "!=": "!=", "<>": "!=", "<": "<", "<=": "<="}
COMPARISONS.update({">": ">", ">=": ">="})  # spelling -> canonical operator

GRAMMAR = r"""
start: _FIND _ALL table (where near? | near where?)? order? limit? offset?
table: TOKENS | NODES | EDGES | FIELDS
where: _WHERE or_expr
?or_expr: and_expr (_OR and_expr)*
?and_expr: not_expr (_AND not_expr)*
?not_expr: _NOT not_expr -> negation
         | atom
?atom: operand COMP_OP operand -> compare
     | operand _IN _LPAR literals _RPAR -> member
     | operand _NOT _IN _LPAR literals _RPAR -> not_member
     | operand _CONTAINS STRING -> contains
     | operand _NOT _CONTAINS STRING -> not_contains
     | _LPAR or_expr _RPAR
literals: literal (_COMMA literal)*
?operand: NAME -> column
        | literal
?literal: SIGNED_NUMBER -> number
        | STRING -> string
near: _NEAR (vector | STRING) (_WITHIN SIGNED_NUMBER)?
vector: _LSQB numbers _RSQB | _LPAR numbers _RPAR | numbers
numbers: SIGNED_NUMBER (_COMMA? SIGNED_NUMBER)*
order: _ORDER _BY NAME (ASC | DESC)?
limit: _LIMIT INT
offset: _OFFSET INT

_FIND: "find"i
_ALL: "all"i
TOKENS: "tokens"i
NODES: "nodes"i
EDGES: "edges"i
FIELDS: "fields"i
_WHERE: "where"i
_AND: "and"i
_OR: "or"i
_NOT: "not"i
_IN: "in"i
_CONTAINS: "contains"i
_NEAR: "near"i
_WITHIN: "within"i
_ORDER: "order"i
_BY: "by"i
ASC: "asc"i
DESC: "desc"i
_LIMIT: "limit"i
_OFFSET: "offset"i
_LPAR: "("
_RPAR: ")"
_LSQB: "["
_RSQB: "]"
_COMMA: ","
COMP_OP: /==|!=|<>|>=|<=|=|>|</
NAME: /[a-z_][a-z0-9_]*/i
STRING: /'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*"/
%import common.SIGNED_NUMBER
%import common.INT
%import common.WS
%ignore WS
"""

# How the terminals read in an error message (keywords read as themselves).
_READABLE = {
    "NAME": "a column name",
    "SIGNED_NUMBER": "a number",
    "INT": "a whole number",
    "STRING": "a quoted string",
    "COMP_OP": "a comparison (= != < <= > >=)",
    "$END": "the end of the query",
    "_LPAR": "'('",
    "_RPAR": "')'",
    "_LSQB": "'['",
    "_RSQB": "']'",
    "_COMMA": "','",
}
Pos = tuple[int, int]  # (line, column), 1-based


class QueryError(InvalidQuery):
    """A malformed query. ``line`` and ``column`` are 1-based; ``expected`` lists what would have fit."""

    def __init__(
        self, reason: str, text: str, line: int, column: int, expected: tuple[str, ...] = ()
    ) -> None:
        self.reason = reason
        self.line = line
        self.column = column
        self.expected = expected
        self.query = text
        lines = text.splitlines() or [""]
        shown = lines[line - 1] if 0 < line <= len(lines) else ""
        super().__init__(f"{reason} at line {line}, column {column}\n  {shown}\n  {' ' * (column - 1)}^")


# --- the parsed form ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Column:
    """A column name (lower case) as written at ``pos``."""

    name: str
    pos: Pos = field(default=(1, 1), compare=False, repr=False)

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Literal:
    """A number (int or float) or a string."""

    value: int | float | str
    pos: Pos = field(default=(1, 1), compare=False, repr=False)

    def __str__(self) -> str:
        if isinstance(self.value, str):
            return "'" + self.value.replace("\\", "\\\\").replace("'", "\\'") + "'"
        return repr(self.value)


Operand = Column | Literal


@dataclass(frozen=True)
class Compare:
    """``left op right`` with ``op`` one of ``= != < <= > >=``."""

    op: str
    left: Operand
    right: Operand
    pos: Pos = field(default=(1, 1), compare=False, repr=False)

    def __str__(self) -> str:
        return f"{self.left} {self.op} {self.right}"


@dataclass(frozen=True)
class Member:
    """``operand [not] in (values...)``."""

    operand: Operand
    values: tuple[Literal, ...]
    negated: bool = False
    pos: Pos = field(default=(1, 1), compare=False, repr=False)

    def __str__(self) -> str:
        return f"{self.operand} {'not in' if self.negated else 'in'} ({', '.join(map(str, self.values))})"


@dataclass(frozen=True)
class Contains:
    """``operand [not] contains 'text'``: a case-insensitive substring test."""

    operand: Operand
    text: Literal
    negated: bool = False
    pos: Pos = field(default=(1, 1), compare=False, repr=False)

    def __str__(self) -> str:
        return f"{self.operand} {'not contains' if self.negated else 'contains'} {self.text}"


@dataclass(frozen=True)
class And:
    parts: tuple[Condition, ...]

    def __str__(self) -> str:
        return " and ".join(_wrap(p) for p in self.parts)


@dataclass(frozen=True)
class Or:
    parts: tuple[Condition, ...]

    def __str__(self) -> str:
        return " or ".join(_wrap(p) for p in self.parts)


@dataclass(frozen=True)
class Not:
    part: Condition

    def __str__(self) -> str:
        return f"not {_wrap(self.part)}"


Condition = Compare | Member | Contains | And | Or | Not


def _wrap(c: Condition) -> str:
    return f"({c})" if isinstance(c, (And, Or)) else str(c)


@dataclass(frozen=True)
class Near:
    """``near`` a point (8 floats) or a text (encoded when the query runs), optionally ``within`` r."""

    point: tuple[float, ...] | None = None
    text: str | None = None
    within: float | None = None
    pos: Pos = field(default=(1, 1), compare=False, repr=False)

    def __str__(self) -> str:
        what = (
            str(Literal(self.text))
            if self.text is not None
            else f"[{', '.join(map(repr, self.point or ()))}]"
        )
        return f"near {what}" + (f" within {self.within!r}" if self.within is not None else "")


@dataclass(frozen=True)
class Query:
    """A parsed query; ``str(q)`` is its canonical text (``parse_query(str(q)) == q``).

    Attributes:
        table: ``"tokens"``, ``"nodes"``, ``"edges"`` or ``"fields"``.
        where: the condition, or ``None`` (every row).
        near: the ``near`` clause, or ``None``.
        order: ``(column, descending)``, or ``None``.
        limit, offset: row window applied after ordering (``limit=None``: all rows).
    """

    table: str
    where: Condition | None = None
    near: Near | None = None
    order: tuple[Column, bool] | None = None
    limit: int | None = None
    offset: int = 0
    text: str = field(default="", compare=False, repr=False)  # the source, for positioned errors

    def __str__(self) -> str:
        out = [f"find all {self.table}"]
        if self.where is not None:
            out.append(f"where {self.where}")
        if self.near is not None:
            out.append(str(self.near))
        if self.order is not None:
            out.append(f"order by {self.order[0]} {'desc' if self.order[1] else 'asc'}")
        if self.limit is not None:
            out.append(f"limit {self.limit}")
        if self.offset:
            out.append(f"offset {self.offset}")
        return " ".join(out)

    def error(self, reason: str, pos: Pos, expected: tuple[str, ...] = ()) -> QueryError:
        """A :class:`QueryError` at ``pos`` of this query's text."""
        return QueryError(reason, self.text or str(self), pos[0], pos[1], expected)


# --- parsing -----------------------------------------------------------------------------------------
@cache
def _parser() -> Lark:
    return Lark(GRAMMAR, parser="lalr", propagate_positions=True, maybe_placeholders=False)


@lru_cache(maxsize=512)
def parse_query(text: str) -> Query:
    """Parse ``text`` into a :class:`Query`.

    Raises:
        QueryError: a syntax error (with line, column and what was expected there), a ``near`` point
            without 8 finite numbers, or a negative ``within``.
    """
    if not isinstance(text, str):
        raise InvalidQuery(f"a query must be a string, got {type(text).__name__}")
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as exc:
        raise _syntax_error(exc, text) from None
    return _Build(text).query(tree)


def _syntax_error(exc: UnexpectedInput, text: str) -> QueryError:
    line, column = exc.line, exc.column
    if isinstance(exc, UnexpectedToken):
        names = exc.accepts or exc.expected
        tok = exc.token
        if tok.type == "$END":  # lark places the end at the last token: point past the text instead
            line, column = _end_position(text)
            got = "the end of the query"
        else:
            got = repr(str(tok))
    elif isinstance(exc, UnexpectedCharacters):
        names = exc.allowed
        char = text[exc.pos_in_stream] if exc.pos_in_stream < len(text) else ""
        got = repr(char) + (" (an unterminated string?)" if char in ("'", '"') else "")
    else:  # pragma: no cover - only the Earley parser raises other kinds
        names, got = set(), "something unexpected"
    expected = tuple(sorted(_readable(n) for n in names))
    return QueryError(f"expected {_one_of(expected)}, got {got}", text, line, column, expected)


def _readable(terminal: str) -> str:
    return _READABLE.get(terminal, f"'{terminal.lstrip('_').lower()}'")


def _one_of(items: tuple[str, ...]) -> str:
    if not items:
        return "nothing more"
    return items[0] if len(items) == 1 else "one of " + ", ".join(items)


def _end_position(text: str) -> Pos:
    lines = text.rstrip().split("\n")
    return len(lines), len(lines[-1]) + 1


class _Build:
    """Turns lark's tree into the frozen dataclasses, keeping the positions of names and literals."""

    def __init__(self, text: str) -> None:
        self.text = text

    def query(self, tree: Tree) -> Query:
        parts: dict[str, Any] = {"table": str(tree.children[0].children[0]).lower()}
        for clause in tree.children[1:]:
            kind, kids = clause.data, clause.children
            if kind == "where":
                parts["where"] = self.condition(kids[0])
            elif kind == "near":
                parts["near"] = self.near(clause)
            elif kind == "order":
                parts["order"] = (self.column(kids[0]), len(kids) > 1 and kids[1].upper() == "DESC")
            else:  # limit / offset
                parts[kind] = int(kids[0])
        return Query(**parts, text=self.text)

    def condition(self, node: Tree) -> Condition:
        kind, kids = node.data, node.children
        if kind == "or_expr":
            return Or(tuple(self.condition(k) for k in kids))
        if kind == "and_expr":
            return And(tuple(self.condition(k) for k in kids))
        if kind == "negation":
            return Not(self.condition(kids[0]))
        pos = (node.meta.line, node.meta.column)
        if kind == "compare":
            return Compare(COMPARISONS[str(kids[1])], self.operand(kids[0]), self.operand(kids[2]), pos)
        if kind in ("contains", "not_contains"):
            tok = kids[1]
            text = Literal(_unquote(str(tok)), (tok.line, tok.column))
            return Contains(self.operand(kids[0]), text, kind == "not_contains", pos)
        values = tuple(self.operand(k) for k in kids[1].children)
        return Member(self.operand(kids[0]), values, kind == "not_member", pos)  # type: ignore[arg-type]

    def operand(self, node: Tree) -> Operand:
        tok = node.children[0]
        if node.data == "column":
            return self.column(tok)
        if node.data == "string":
            return Literal(_unquote(str(tok)), (tok.line, tok.column))
        value = _number(str(tok))
        if not abs(value) < float("inf"):
            raise QueryError(f"numbers must be finite, got {tok}", self.text, *_at(tok))
        return Literal(value, (tok.line, tok.column))

    def column(self, tok: Token) -> Column:
        return Column(str(tok).lower(), (tok.line, tok.column))

    def near(self, node: Tree) -> Near:
        target, *rest = node.children
        pos = (node.meta.line, node.meta.column)
        within = None
        if rest:
            within = float(rest[0])
            if not within >= 0 or within == float("inf"):
                raise QueryError(
                    f"within needs a finite distance >= 0, got {rest[0]}", self.text, *_at(rest[0])
                )
        if isinstance(target, Token):  # a quoted text
            return Near(text=_unquote(str(target)), within=within, pos=pos)
        numbers = target.children[0].children
        point = tuple(float(n) for n in numbers)
        at = (target.meta.line, target.meta.column)
        if len(point) != 8:
            raise QueryError(f"near needs 8 numbers (one per axis), got {len(point)}", self.text, *at)
        if not all(abs(v) < float("inf") for v in point):
            raise QueryError("near needs 8 finite numbers", self.text, *at)
        return Near(point=point, within=within, pos=pos)


def _at(tok: Token) -> Pos:
    return tok.line or 1, tok.column or 1


_ESCAPE = re.compile(r"\\(.)")


def _unquote(token: str) -> str:
    return _ESCAPE.sub(r"\1", token[1:-1])


def _number(token: str) -> int | float:
    if re.fullmatch(r"[+-]?\d+", token):
        value = int(token)
        return value if -(2**63) <= value < 2**63 else float(value)  # beyond int64: compare as a float
    return float(token)
