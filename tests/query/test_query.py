"""The query language: results against a brute-force pandas evaluation of the same predicate, the
canonical text round trip, and positioned errors for malformed queries.

One small engine per device (clustered random signals of a few kinds, resonances, a few emergent
"fields" with children and ``part_of`` edges, edges of several relations, dead tokens and edges) is
queried read-only by every test; the oracle is ``engine.tokens()`` / ``engine.edges()`` filtered,
sorted (``kind="stable"``) and sliced by pandas.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
import torch

import neurograph as ng
from neurograph.errors import InvalidQuery
from neurograph.kinds import ENTITY_KINDS
from neurograph.query import EDGE_COLUMNS, TOKEN_COLUMNS, QueryError, parse_query, run_query
from neurograph.space import AXES

CHAT = "signal.input.external.text.chat"
KINDS = ("concept", "goal", "object", "memory")
LABELS = ("user", "bot", "sensor")
SCALE = (1.0, 2.0, 0.5, 1.0, 1.0, 3.0, 1.0, 0.25)  # a non-uniform metric for near
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]

Frame = pd.DataFrame
Pred = Callable[[Frame], "pd.Series[bool]"]


@pytest.fixture(scope="module", params=DEVICES)
def eng(request: pytest.FixtureRequest) -> ng.Engine:
    rng = np.random.default_rng(7)
    eng = ng.Engine(device=request.param, cdna={"axis_scale": SCALE}, seed=0)
    centers = rng.uniform(-0.6, 0.6, (12, 8))
    x = centers[rng.integers(0, 12, 500)] + rng.normal(0, 0.06, (500, 8))  # (500, 8) clustered
    labels = rng.choice(LABELS, 500).tolist()
    kinds = rng.choice(KINDS, 500).tolist()
    eng.emit_batch(CHAT, x, priorities=rng.integers(0, 256, 500), kinds=kinds, labels=labels)
    x2 = x[:150] + rng.normal(0, 0.01, (150, 8))
    eng.emit_batch(CHAT, x2, labels="late")  # resonances: hits, mass, moves
    t, e = eng.token_state, eng.edge_state
    fields = np.arange(0, 20, 2)  # ten "fields" of level 1 with children
    t.scatter("level", fields, 1)
    children = np.arange(40, 100)
    t.scatter("parent", children, fields[children % 10])
    e.append(children, fields[children % 10], tick=eng.tick, kind=0x60, weight=0.5, mutability=0)
    few = np.nonzero(e.gather("degree", np.arange(t.count)) < 8)[0][:20]  # room in their adjacency rows
    e.append(few[:10], few[10:], tick=eng.tick, kind=[0x10, 0x21] * 5, weight=0.9, mutability=1)
    e.scatter("confidence", np.arange(e.count), rng.uniform(0, 1, e.count).astype(np.float32))
    t.kill(np.array([3, 5, 120, 121]))
    e.remove(np.array([0, 7]))
    return eng


def brute(
    df: Frame,
    pred: Pred | None = None,
    order: str | None = None,
    desc: bool = False,
    limit: int | None = None,
    offset: int = 0,
) -> Frame:
    """The same selection by plain pandas."""
    out = df if pred is None else df[pred(df)]
    if order is not None:
        out = out.sort_values(order, ascending=not desc, kind="stable")
    return out.iloc[offset : None if limit is None else offset + limit].reset_index(drop=True)


def fields(t: Frame) -> Frame:
    return t[t.level >= 1]


TOKEN_CASES: list[tuple[str, Callable[[Frame], Frame]]] = [
    ("find all tokens", lambda t: t),
    (
        "find all nodes where type = 'concept' limit 10",
        lambda t: brute(t, lambda d: d.kind == "concept", limit=10),
    ),
    (
        "FIND ALL NODES WHERE Kind != 'goal' AND mass > 1",
        lambda t: brute(t, lambda d: (d.kind != "goal") & (d.mass > 1)),
    ),
    (
        "find all tokens where kind in ('goal', 'memory') order by mass desc",
        lambda t: brute(t, lambda d: d.kind.isin(["goal", "memory"]), "mass", True),
    ),
    (
        "find all tokens where type not in ('goal') and hits >= 2",
        lambda t: brute(t, lambda d: ~d.kind.isin(["goal"]) & (d.hits >= 2)),
    ),
    (
        "find all tokens where not (physical > 0 or sensory < -0.2) order by abstract",
        lambda t: brute(t, lambda d: ~((d.physical > 0) | (d.sensory < -0.2)), "abstract"),
    ),
    (
        "find all tokens where 0.1 <= emotional and emotional < 0.3 or social = social",
        lambda t: brute(t, lambda d: ((d.emotional >= 0.1) & (d.emotional < 0.3)) | (d.social == d.social)),
    ),
    (
        "find all tokens where id in (0, 1, 2, 3, 4, 400, 10000) order by id desc",
        lambda t: brute(t, lambda d: d.id.isin([0, 1, 2, 3, 4, 400, 10000]), "id", True),
    ),
    (
        "find all tokens where id > 100.5 and id <= 200",
        lambda t: brute(t, lambda d: (d.id > 100.5) & (d.id <= 200)),
    ),
    (
        "find all tokens where parent != -1 order by parent desc limit 7 offset 3",
        lambda t: brute(t, lambda d: d.parent != -1, "parent", True, limit=7, offset=3),
    ),
    ("find all tokens order by kind", lambda t: brute(t, order="kind")),
    ("find all tokens order by type desc limit 50", lambda t: brute(t, order="kind", desc=True, limit=50)),
    ("find all tokens where born <= seen and seen >= 500", lambda t: brute(t, lambda d: d.seen >= 500)),
    ("find all tokens where level = 0 and 1 = 2", lambda t: t.iloc[:0].reset_index(drop=True)),
    ("find all tokens where 'a' < 'b' limit 3 offset 500", lambda t: brute(t, limit=3, offset=500)),
    ("find all fields", lambda t: brute(fields(t))),
    (
        "find all fields where id > 4 order by id desc",
        lambda t: brute(fields(t), lambda d: d.id > 4, "id", True),
    ),
    (
        "find all tokens where mass > radius and strength = strength order by hits desc limit 20",
        lambda t: brute(t, lambda d: d.mass > d.radius, "hits", True, limit=20),
    ),
    (
        "find all tokens where activation >= 0 and motor in (0.5, -0.5) or cognitive < -1e9",
        lambda t: brute(t, lambda d: (d.activation >= 0) & d.motor.isin([0.5, -0.5]) | (d.cognitive < -1e9)),
    ),
    ("find all tokens limit 0", lambda t: t.iloc[:0].reset_index(drop=True)),
    (  # literals outside a column's dtype (level is int8 in the state, hits int32)
        "find all tokens where level < 300 and level > -300 and level != 999 and hits in (1, 2, 9999999999)",
        lambda t: brute(t, lambda d: d.hits.isin([1, 2])),
    ),
    ("find all tokens where level >= 200 or level in (300, 1)", lambda t: brute(t, lambda d: d.level == 1)),
    (
        "find all tokens where mass > level and hits < 2.5",
        lambda t: brute(t, lambda d: (d.mass > d.level) & (d.hits < 2.5)),
    ),
]

EDGE_CASES: list[tuple[str, Callable[[Frame], Frame]]] = [
    ("find all edges", lambda e: e),
    (
        "find all edges where relation = 'associative' and weight > 0.01 order by weight desc",
        lambda e: brute(e, lambda d: (d.relation == "associative") & (d.weight > 0.01), "weight", True),
    ),
    (
        "find all edges where type in ('causal', 'temporal') order by kind desc",
        lambda e: brute(e, lambda d: d.relation.isin(["causal", "temporal"]), "kind", True),
    ),
    (
        "find all edges where mutability != 'hypothesis' order by mutability",
        lambda e: brute(e, lambda d: d.mutability != "hypothesis", "mutability"),
    ),
    (
        "find all edges order by relation desc limit 40",
        lambda e: brute(e, order="relation", desc=True, limit=40),
    ),
    (
        "find all edges where confidence < 0.5 and (source < target or evidence > 1) order by confidence",
        lambda e: brute(
            e, lambda d: (d.confidence < 0.5) & ((d.source < d.target) | (d.evidence > 1)), "confidence"
        ),
    ),
    (
        "find all edges where kind = 96 and updated >= 0 limit 5 offset 2",
        lambda e: brute(e, lambda d: (d.kind == 96) & (d.updated >= 0), limit=5, offset=2),
    ),
    (
        "find all edges where target in (0, 2, 4) or id = 3",
        lambda e: brute(e, lambda d: d.target.isin([0, 2, 4]) | (d.id == 3)),
    ),
]


@pytest.mark.parametrize("text,oracle", TOKEN_CASES, ids=[c[0] for c in TOKEN_CASES])
def test_token_queries_match_pandas(eng: ng.Engine, text: str, oracle: Callable[[Frame], Frame]) -> None:
    pd.testing.assert_frame_equal(eng.query(text), oracle(eng.tokens()).reset_index(drop=True))


@pytest.mark.parametrize("text,oracle", EDGE_CASES, ids=[c[0] for c in EDGE_CASES])
def test_edge_queries_match_pandas(eng: ng.Engine, text: str, oracle: Callable[[Frame], Frame]) -> None:
    pd.testing.assert_frame_equal(eng.query(text), oracle(eng.edges()).reset_index(drop=True))


def test_the_fixture_exercises_every_case(eng: ng.Engine) -> None:
    """The tables hold what the cases are about: several kinds, relations, fields, parents, dead rows."""
    t, e = eng.tokens(), eng.edges()
    assert set(t.kind) == set(KINDS) and (t.level >= 1).sum() == 10 and (t.parent >= 0).sum() == 60
    assert {"associative", "structural", "causal", "temporal"} <= set(e.relation)
    assert len(t) == eng.token_state.count - 4 and len(e) == eng.edge_state.count - 2
    assert (t.hits >= 2).any() and len(eng.query("find all nodes where type = 'concept' and mass > 1")) > 0


# --- random predicates: our text and pandas' DataFrame.query text of the same tree -----------------------
def random_predicate(rng: np.random.Generator, df: Frame, names: dict[str, tuple[str, ...]], depth: int = 0):
    """``(our text, pandas query text)`` of a random condition over ``df``'s columns."""
    if depth < 2 and rng.random() < 0.5:
        word = ["and", "or"][rng.integers(2)]
        parts = [random_predicate(rng, df, names, depth + 1) for _ in range(rng.integers(2, 4))]
        ours, theirs = (f" {word} ".join(f"({p[i]})" for p in parts) for i in (0, 1))
        if rng.random() < 0.3:
            return f"not ({ours})", f"not ({theirs})"
        return ours, theirs
    columns = [c for c in df.columns if c != "text"]  # text takes contains (test_memory.py), not compares
    column = columns[rng.integers(len(columns))]
    if column in names:
        pick = rng.choice(names[column], rng.integers(1, 3)).tolist()
        if len(pick) == 1 and rng.random() < 0.6:
            op = ["=", "!="][rng.integers(2)]
            return f"{column} {op} '{pick[0]}'", f"{column} {'==' if op == '=' else op} '{pick[0]}'"
        neg = "not in" if rng.random() < 0.5 else "in"
        ours = ", ".join(f"'{p}'" for p in pick)
        return f"{column} {neg} ({ours})", f"{column} {neg} {pick}"
    values = df[column].to_numpy()
    value = values[rng.integers(len(values))].item() if len(values) else 0  # an exact value of the data
    literal = repr(value)
    if rng.random() < 0.2:
        others = [repr(values[rng.integers(len(values))].item()) for _ in range(2)]
        return (
            f"{column} in ({literal}, {', '.join(others)})",
            f"{column} in [{literal}, {', '.join(others)}]",
        )
    op = ["=", "!=", "<", "<=", ">", ">="][rng.integers(6)]
    return f"{column} {op} {literal}", f"{column} {'==' if op == '=' else op} {literal}"


@pytest.mark.parametrize("table", ["tokens", "edges"])
def test_random_predicates_match_dataframe_query(eng: ng.Engine, table: str) -> None:
    df = eng.tokens() if table == "tokens" else eng.edges()
    names = {"kind": (*KINDS, "pattern"), "label": (*LABELS, "late", "nobody")}
    if table == "edges":
        names = {
            "relation": ("associative", "structural", "causal", "semantic"),
            "mutability": ("learnable", "hypothesis"),
        }
    rng = np.random.default_rng(11)
    selected = 0
    for _ in range(120):
        ours, theirs = random_predicate(rng, df, names)
        got = eng.query(f"find all {table} where {ours}")
        want = df.query(theirs, engine="python").reset_index(drop=True)
        pd.testing.assert_frame_equal(got, want, obj=ours)
        selected += 0 < len(got) < len(df)
    assert selected > 30  # most predicates select a proper, non-empty subset


# --- near ---------------------------------------------------------------------------------------------
def near_oracle(t: Frame, point: list[float], within: float | None = None) -> Frame:
    x = t[list(AXES)].to_numpy(np.float64)  # (n, 8)
    d = np.sqrt(((x - np.asarray(point)) ** 2 * np.asarray(SCALE)).sum(1))
    out = t.assign(distance=d)
    return out if within is None else out[out.distance <= within]


def test_near_orders_by_weighted_distance_and_within_filters(eng: ng.Engine) -> None:
    t = eng.tokens()
    p = t[list(AXES)].iloc[17].tolist()
    got = eng.query(f"find all tokens near {' '.join(map(repr, p))} within 0.3")
    want = brute(near_oracle(t, p, 0.3), order="distance")
    assert 1 < len(want) < len(t)
    pd.testing.assert_frame_equal(got, want)
    assert got.distance.iloc[0] == pytest.approx(0.0, abs=1e-6)
    got = eng.query(f"find all nodes where type = 'goal' near [{', '.join(map(str, p))}] limit 5 offset 1")
    want = brute(near_oracle(t, p), lambda d: d.kind == "goal", "distance", limit=5, offset=1)
    pd.testing.assert_frame_equal(got, want)


def test_near_with_order_where_on_distance_and_fields(eng: ng.Engine) -> None:
    t = eng.tokens()
    p = [0.1] * 8
    got = eng.query(
        "find all fields near (0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1) where distance > 0.5 order by mass"
    )
    want = brute(near_oracle(fields(t), p), lambda d: d.distance > 0.5, "mass")
    pd.testing.assert_frame_equal(got, want)
    swapped = (
        "find all fields where distance > 0.5 near [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1] order by mass"
    )
    pd.testing.assert_frame_equal(eng.query(swapped), want)


def test_near_text_uses_the_encoder(eng: ng.Engine) -> None:
    point = [0.2, -0.1, 0.0, 0.3, 0.1, 0.0, -0.2, 0.05]
    calls: list[str] = []

    def encoder(text: str) -> torch.Tensor:
        calls.append(text)
        return torch.tensor(point)

    got = eng.query('find all tokens near "a \\"quoted\\" cat" within 0.4', encoder=encoder)
    assert calls == ['a "quoted" cat']
    pd.testing.assert_frame_equal(got, eng.query(f"find all tokens near {point} within 0.4"))
    with pytest.raises(QueryError, match="not 8 finite numbers") as info:
        eng.query("find all tokens near 'x'", encoder=lambda s: [0.0] * 7)
    assert (info.value.line, info.value.column) == (1, 17)


def test_queries_change_nothing(eng: ng.Engine) -> None:
    before = eng.tokens(), eng.edges(), eng.tick
    for text, _ in TOKEN_CASES + EDGE_CASES:
        eng.query(text)
    eng.query("find all tokens near [0, 0, 0, 0, 0, 0, 0, 0] within 0.5")
    pd.testing.assert_frame_equal(eng.tokens(), before[0])
    pd.testing.assert_frame_equal(eng.edges(), before[1])
    assert eng.tick == before[2]


def test_columns_are_those_of_the_frames(eng: ng.Engine) -> None:
    assert tuple(eng.tokens().columns) == (*TOKEN_COLUMNS, "label", "text")
    assert tuple(eng.edges().columns) == EDGE_COLUMNS
    assert list(eng.query("find all edges limit 0").columns) == list(EDGE_COLUMNS)


def test_run_query_on_an_empty_engine() -> None:
    eng = ng.Engine()
    pd.testing.assert_frame_equal(eng.query("find all tokens where mass > 1"), eng.tokens())
    edges = eng.query("find all edges order by weight")
    assert len(edges) == 0 and list(edges.columns) == list(EDGE_COLUMNS)
    near = eng.query("find all tokens near [0,0,0,0,0,0,0,0]")
    assert list(near.columns) == [*TOKEN_COLUMNS, "label", "text", "distance"]
    q = parse_query("find all fields")
    assert len(run_query(q, eng.token_state, eng.edge_state, eng.cdna.axis_scale)) == 0


# --- the parsed form ----------------------------------------------------------------------------------
ROUND_TRIP = [c[0] for c in TOKEN_CASES + EDGE_CASES] + [
    "find all tokens near [1, 2, 3, 4, 5, 6, 7, -8e-3] within 0.5 order by distance desc limit 3 offset 2",
    'find all nodes near "it\'s" within 1',
    "find all edges where not not (a = 'x\\'y' or b <> 2) and c == 3",
]


@pytest.mark.parametrize("text", ROUND_TRIP)
def test_canonical_text_parses_back_to_the_same_query(text: str) -> None:
    q = parse_query(text)
    assert parse_query(str(q)) == q
    assert "Query(" in repr(q)


def test_parse_structure() -> None:
    q = parse_query(
        "find all NODES where Type = 'concept' or not mass in (1, 2.5) order by hits desc limit 10"
    )
    assert q.table == "nodes" and q.limit == 10 and q.offset == 0
    assert str(q.where) == "type = 'concept' or not mass in (1, 2.5)"
    assert q.order is not None and q.order[0].name == "hits" and q.order[1] is True


# --- errors -------------------------------------------------------------------------------------------
ERRORS = [  # query, line, column, a fragment of the message
    ("", 1, 1, "expected 'find'"),
    ("find all nodez", 1, 10, "'nodes'"),
    ("find all nodes wher type = 'x'", 1, 16, "'where'"),
    ("find all nodes where", 1, 21, "got the end of the query"),
    ("find all nodes where mass >", 1, 28, "a number"),
    ("find all nodes where kind = 'concept", 1, 29, "unterminated string"),
    ("find all nodes\n  where mass ! 3", 2, 14, "a comparison"),
    ("find all nodes where (mass > 1", 1, 31, "expected ')'"),
    ("find all nodes limit -1", 1, 22, "a whole number"),
    ("find all nodes\nwhere mass > 1\nlimit x", 3, 7, "a whole number"),
    ("find all nodes order mass", 1, 22, "'by'"),
    ("find all nodes limit 3 where mass > 1", 1, 24, "'offset'"),
    ("find all tokens near 1 2 3", 1, 22, "8 numbers"),
    ("find all tokens where mass < 1e999", 1, 30, "numbers must be finite"),
    ("find all tokens near [0,0,0,0,0,0,0,0] within -1", 1, 47, "within needs"),
    ("find all nodes where mas > 1", 1, 22, "unknown column 'mas'"),
    ("find all nodes order by massy", 1, 25, "unknown column 'massy'"),
    ("find all edges where mass > 1", 1, 22, "unknown column 'mass' of edges"),
    ("find all nodes where type = 'concpt'", 1, 29, "unknown kind 'concpt'; valid names are undefined"),
    ("find all edges where relation in ('causal', 'casual')", 1, 45, "unknown relation 'casual'"),
    ("find all nodes where kind > 'concept'", 1, 22, "holds names: use = != in"),
    ("find all nodes where kind = 5", 1, 29, "compare it with a quoted name"),
    ("find all nodes where mass = 'heavy'", 1, 29, "mass is numeric"),
    ("find all nodes where hits in (1, 'two')", 1, 34, "hits is numeric"),
    ("find all nodes where kind = mass", 1, 22, "names and numbers"),
    ("find all edges where relation = mutability", 1, 22, "different names"),
    ("find all edges near [0,0,0,0,0,0,0,0]", 1, 16, "near needs positions; edges have none"),
    ("find all nodes where distance < 1", 1, 22, "'distance' needs a near clause"),
    ("find all nodes near 'cat'", 1, 16, "needs a text encoder"),
]


@pytest.mark.parametrize("text,line,column,fragment", ERRORS, ids=[e[0] or "empty" for e in ERRORS])
def test_malformed_queries_give_positioned_errors(text: str, line: int, column: int, fragment: str) -> None:
    eng = ng.Engine()
    eng.add_tokens(np.zeros((1, 8)))
    with pytest.raises(InvalidQuery) as info:
        eng.query(text)
    err = info.value
    assert isinstance(err, QueryError)
    assert (err.line, err.column) == (line, column), str(err)
    assert fragment in str(err)
    assert f"at line {line}, column {column}" in str(err)
    assert str(err).endswith(" " * (column - 1) + "^")  # a caret under the position


def test_syntax_errors_list_what_was_expected() -> None:
    with pytest.raises(QueryError) as info:
        parse_query("find all nodes where mass > 1 limt 3")
    assert {"'limit'", "'and'", "'or'", "the end of the query"} <= set(info.value.expected)
    with pytest.raises(QueryError) as info:
        ng.Engine().query("find all nodes where type = 'x'")
    assert info.value.expected == ENTITY_KINDS
    with pytest.raises(InvalidQuery, match="must be a string"):
        parse_query(42)  # type: ignore[arg-type]
