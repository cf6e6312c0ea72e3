"""The CDNA: validation naming every rule, versions, rollback, profiles, YAML, content hash."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import neurograph as ng
from neurograph.cdna import CDNA, PROFILES, CDNAHistory
from neurograph.errors import InvalidCDNA


def test_invalid_cdna_lists_every_violation():
    with pytest.raises(InvalidCDNA) as info:
        CDNA(novelty_threshold=0.5, neighbor_radius=0.2, mass_min=5.0, mass_max=1.0, max_degree=0, dt=-1.0)
    text = "\n".join(info.value.violations)
    assert len(info.value.violations) >= 4
    assert "novelty_threshold = 0.5 must be <= neighbor_radius = 0.2" in text
    assert "mass_min = 5.0 must be <= mass_max = 1.0" in text
    assert "max_degree = 0 must be >= 1" in text
    assert "dt = -1.0 must be > 0" in text


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"axis_min": (0.0,) * 7}, "axis_min must have 8 numbers"),
        ({"axis_min": (1.0,) * 8}, "axis_min[physical] = 1.0 must be < axis_max[physical] = 1.0"),
        ({"axis_scale": (1.0,) * 7 + (0.0,)}, "axis_scale[abstract] = 0.0 must be > 0"),
        ({"max_neighbors": 2.5}, "max_neighbors must be an integer"),
        ({"learning_rate": float("nan")}, "learning_rate must be finite"),
        ({"strict": "yes"}, "strict must be true or false"),
        ({"allowed_edge_kinds": (0x50, 0x55)}, "unknown relation groups [85]"),
        ({"confidence_floor": 0.6}, "confidence_floor = 0.6 must be < confidence_init = 0.5"),
        ({"token_radius": 5.0}, "token_radius = 5.0 must lie in [radius_min, radius_max]"),
        ({"field_persistence_rule": "widest"}, "field_persistence_rule = 'widest' must be one of"),
    ],
    ids=[
        "axis-length",
        "empty-box",
        "zero-scale",
        "int-field",
        "nan",
        "bool-field",
        "edge-kind",
        "floor",
        "token-radius",
        "persistence-rule",
    ],
)
def test_each_rule_is_named(changes, needle):
    with pytest.raises(InvalidCDNA) as info:
        CDNA(**changes)
    assert any(needle in v for v in info.value.violations), info.value.violations


def test_replace_bumps_version_and_refuses_unknown_fields():
    c = CDNA()
    d = c.replace(novelty_threshold=0.05)
    assert d.version == c.version + 1 and d.novelty_threshold == 0.05 and c.novelty_threshold == 0.1
    with pytest.raises(InvalidCDNA, match="unknown CDNA field 'novelty'"):
        c.replace(novelty=0.1)


def test_content_hash_changes_with_every_field():
    base = CDNA()
    seen = {base.hash}
    for f in dataclasses.fields(CDNA):
        if f.name == "version":
            continue
        v = getattr(base, f.name)
        if isinstance(v, bool):
            new = not v
        elif f.name == "field_persistence_rule":
            new = "gap"  # the other rule (a name outside PERSISTENCE_RULES is refused)
        elif isinstance(v, str):
            new = v + "x"
        elif isinstance(v, tuple) and f.name == "allowed_edge_kinds":
            new = v[:-1]
        elif isinstance(v, tuple):
            new = (v[0] * 0.5 if v[0] > 0 else v[0] - 0.5, *v[1:])
        elif isinstance(v, int):
            new = v + 1
        else:
            new = v * 0.9 if v > 0 else 0.001
            if f.name == "neighbor_radius":
                new = 0.3
        changed = dataclasses.replace(base, **{f.name: new})
        assert changed.hash not in seen, f.name
        seen.add(changed.hash)
    assert base.replace().hash == base.hash  # version is not content


def test_two_edits_then_rollback_give_the_version_after_the_first():
    h = CDNAHistory()
    first = h.update(novelty_threshold=0.05)
    h.update(max_degree=8)
    back = h.rollback()
    assert back == first and back.hash == first.hash and back.version == first.version
    assert [e["action"] for e in h.log] == ["init", "update", "update", "rollback"]
    again = h.update(learning_rate=0.2)
    assert again.version == 4  # version numbers are never reused
    h.rollback()
    h.rollback()
    with pytest.raises(InvalidCDNA, match="nothing to roll back"):
        h.rollback()


def test_history_refuses_an_invalid_update_and_keeps_the_current():
    h = CDNAHistory()
    with pytest.raises(InvalidCDNA):
        h.update(novelty_threshold=1.0)
    assert len(h) == 1 and h.current == CDNA()


def test_profiles_differ_as_designed():
    d, e, a, c = (CDNA.profile(n) for n in ("default", "explorer", "analyst", "creative"))
    assert set(PROFILES) == {"default", "explorer", "analyst", "creative"}
    assert e.max_degree > d.max_degree and e.learning_rate > d.learning_rate  # more degrees and mutation
    assert a.strict and not d.strict and a.max_degree < d.max_degree  # strict, fewer degrees
    assert c.learning_rate > d.learning_rate and c.temperature > d.temperature  # mutation and temperature
    assert c.learning_rate > e.learning_rate and c.temperature > e.temperature
    assert len({x.hash for x in (d, e, a, c)}) == 4
    with pytest.raises(InvalidCDNA, match="unknown profile"):
        CDNA.profile("chaotic")


def test_yaml_roundtrip(tmp_path):
    c = CDNA.profile("explorer").replace(axis_scale=(2.0,) + (1.0,) * 7)
    path = tmp_path / "cdna.yaml"
    c.to_yaml(path)
    back = CDNA.from_yaml(path)
    assert back == c and back.hash == c.hash
    assert CDNA.from_yaml(c.to_yaml()) == c
    with pytest.raises(InvalidCDNA, match="unknown CDNA field 'bogus'"):
        CDNA.from_yaml("bogus: 1\n")


def test_history_dict_roundtrip():
    h = CDNAHistory()
    h.update(max_degree=12)
    back = CDNAHistory.from_dict(h.to_dict())
    assert back.versions == h.versions and back.log == h.log


def test_engine_cdna_changes_apply_to_the_state():
    eng = ng.Engine()
    rng = np.random.default_rng(0)
    eng.emit_batch("signal.input.x", 0.1 * rng.standard_normal((400, 8)))
    assert eng.edge_state.degree.max() > 4
    events = []
    eng.subscribe("cdna.*", events.append)
    eng.update_cdna(max_degree=4, axis_max=(0.05,) * 8)
    assert int(eng.edge_state.degree.max()) <= 4
    assert eng.tokens()[list(ng.AXES)].to_numpy().max() <= 0.05 + 1e-7
    v = eng.rollback_cdna()
    assert v.max_degree == 32 and eng.cdna.version == 1
    assert [e.event_type for e in events] == ["cdna.updated", "cdna.rolled_back"]
    eng.set_cdna("analyst")
    assert eng.cdna.strict and eng.cdna.version == 3


def test_a_wider_degree_bound_past_the_memory_quota_is_refused_before_anything_changes():
    eng = ng.Engine()
    eng.emit_batch("signal.input.x", np.random.default_rng(1).uniform(-0.2, 0.2, (50, 8)))
    footprint = eng.stats()["memory_bytes"]
    eng.update_cdna(max_memory_bytes=footprint + 1024)  # no growth: accepted
    with pytest.raises(ng.QuotaExceeded) as info:
        eng.update_cdna(max_degree=512)  # the adjacency tables would grow 16-fold
    assert info.value.quota == "max_memory_bytes"
    assert eng.cdna.max_degree == 32 and eng.edge_state.max_degree == 32 and eng.cdna.version == 2


# --- calibration from data (DESIGN §5) -------------------------------------------------------------------
def _groups(n: int = 300, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-0.5, 0.5, (4, 8))
    return centres[rng.integers(0, 4, n)] + rng.normal(0, 0.03, (n, 8))


def test_calibrate_formulas() -> None:
    from scipy.spatial import cKDTree

    x = _groups()
    c = CDNA.calibrate(x)
    s = float(np.median(cKDTree(x).query(x, 2)[0][:, 1]))
    base = CDNA()
    f = s / base.neighbor_radius
    assert c.name == "auto" and c.version == 1
    assert c.neighbor_radius == pytest.approx(s) and c.novelty_threshold == pytest.approx(s / 2)
    assert c.token_radius == pytest.approx(s / 4) and c.skin == pytest.approx(base.skin * f)
    for name in ("radius_min", "radius_max", "rest_min", "rest_max", "rest_length", "max_speed"):
        assert getattr(c, name) == pytest.approx(getattr(base, name) * f), name
    lo, hi = x.min(0), x.max(0)
    pad = np.maximum(0.1 * (hi - lo), s)
    np.testing.assert_allclose(c.axis_min, lo - pad)
    np.testing.assert_allclose(c.axis_max, hi + pad)
    assert c.field_persistence == base.field_persistence and c.max_neighbors == base.max_neighbors
    explorer = CDNA.calibrate(x, base="explorer")  # the base profile's shape is kept
    assert explorer.name == "auto:explorer"
    assert explorer.novelty_threshold / explorer.neighbor_radius == pytest.approx(0.12 / 0.3)


def test_calibrate_ignores_duplicates_and_refuses_bad_data() -> None:
    x = _groups()
    assert CDNA.calibrate(np.concatenate([x, x, x])).neighbor_radius == pytest.approx(
        CDNA.calibrate(x).neighbor_radius
    )
    for bad in (np.zeros((5, 8)), np.ones((3, 7)), [[float("nan")] * 8] * 3, "text"):
        with pytest.raises(InvalidCDNA):
            CDNA.calibrate(bad)
    with pytest.raises(InvalidCDNA, match="calibrate"):
        CDNA.profile("auto")


@settings(max_examples=8, deadline=None)
@given(st.floats(0.01, 100.0), st.lists(st.floats(-5.0, 5.0), min_size=8, max_size=8))
def test_fields_do_not_change_when_the_data_are_scaled_or_shifted(factor: float, shift: list[float]) -> None:
    x = _groups(200, seed=1)

    def fields(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        eng = ng.Engine(cdna=CDNA.calibrate(data))
        ids = eng.emit_batch("signal.input.external.text.chat", data).token_ids.numpy()
        h = eng.hierarchy()
        return ids, h.ancestors(ids, 1)

    ids, ref = fields(x)
    assert len(np.unique(ref[ref >= 0])) == 4
    got_ids, got = fields(x * factor + np.asarray(shift))
    np.testing.assert_array_equal(got_ids, ids)
    np.testing.assert_array_equal(got, ref)
