"""The SQLite event log, snapshot files and store settings on their own."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
import torch

from neurograph.errors import StoreError
from neurograph.persist import DURABILITY, EventLog, StoreConfig
from neurograph.persist.log import pack, unpack
from neurograph.persist.snapshot import DamagedSnapshot, list_snapshots, read_snapshot, write_snapshot
from neurograph.space import AXES


@pytest.mark.parametrize("durability", list(DURABILITY))
def test_records_round_trip_in_order(tmp_path, durability):
    log = EventLog(tmp_path / "log.sqlite", durability)
    vec = np.arange(16, dtype=np.float32).reshape(2, 8)
    log.append(1, "emit", {"event_type": "a.b", "meta": {"n": np.int64(3)}}, {"vectors": vec})
    log.append(2, "cdna.rollback", {"version": 1})
    log.append(3, "cdna.update", {"changes": {"axis_scale": (1.0,) * 8}})
    recs = list(log.records())
    assert [r.seq for r in recs] == [1, 2, 3]
    assert [r.op for r in recs] == ["emit", "cdna.rollback", "cdna.update"]
    assert recs[0].payload == {"event_type": "a.b", "meta": {"n": 3}}
    np.testing.assert_array_equal(recs[0].arrays["vectors"], vec)
    assert recs[0].arrays["vectors"].flags.writeable
    assert recs[1].arrays == {} and recs[2].payload["changes"]["axis_scale"] == [1.0] * 8
    assert [r.seq for r in log.records(after=1)] == [2, 3]
    assert log.bounds() == (1, 3) and log.next_after(1) == 2 and log.next_after(3) is None
    assert log.compact(2) == 2 and log.bounds() == (3, 3) and len(log) == 1
    assert log.integrity_check() == "ok"
    mode = log._conn.execute("PRAGMA journal_mode").fetchone()[0]
    sync = log._conn.execute("PRAGMA synchronous").fetchone()[0]
    assert mode == "wal" and sync == {"off": 0, "normal": 1, "full": 2}[durability]
    log.close()


def test_sequence_numbers_are_unique(tmp_path):
    log = EventLog(tmp_path / "log.sqlite")
    log.append(1, "emit")
    with pytest.raises(sqlite3.IntegrityError):
        log.append(1, "emit")


def test_signals_frame_has_one_row_per_signal(tmp_path):
    log = EventLog(tmp_path / "log.sqlite")
    assert log.signals_frame().empty
    arrays = {
        "vectors": np.full((3, 8), 0.5, np.float32),
        "priorities": np.array([1, 2, 3], np.uint8),
        "kinds": np.array([5, 5, 9], np.int16),
        "token_ids": np.array([0, 1, 0]),
        "is_novel": np.array([True, True, False]),
    }
    log.append(1, "emit", {"event_types": ["a.b", "a.c", "a.d"]}, arrays)
    log.append(2, "cdna.rollback")
    log.append(3, "add_tokens", {}, {k: v[:1] for k, v in arrays.items() if k != "is_novel"})
    df = log.signals_frame()
    assert df["seq"].tolist() == [1, 1, 1, 3] and df["row"].tolist() == [0, 1, 2, 0]
    assert df["event_type"].tolist() == ["a.b", "a.c", "a.d", ""]
    assert df["token_id"].tolist() == [0, 1, 0, 0] and df["is_novel"].tolist() == [True, True, False, True]
    assert (df[list(AXES)].to_numpy() == 0.5).all()


def test_not_a_log_is_a_store_error(tmp_path):
    bad = tmp_path / "log.sqlite"
    bad.write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(StoreError, match="not a readable neurograph event log"):
        EventLog(bad)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("durability", "paranoid"),
        ("snapshot_every", 0),
        ("snapshot_every", 2.5),
        ("snapshot_seconds", -1),
        ("keep_snapshots", 0),
        ("keep_snapshots", True),
    ],
)
def test_store_config_names_the_bad_setting(field, value):
    with pytest.raises(ValueError, match=field):
        StoreConfig(**{field: value})


def test_snapshot_files_are_atomic_and_verified(tmp_path):
    tensors = {"tokens.pos": torch.rand(5, 8), "edges.alive": torch.ones(3, dtype=torch.bool)}
    meta = {"format_version": 1, "kind": "neurograph.snapshot", "seq": 7}
    path = write_snapshot(tmp_path, tensors, meta)
    assert path.name == "000000000007.safetensors" and not list(tmp_path.glob(".*"))
    got, back = read_snapshot(path)
    assert back == meta and torch.equal(got["tokens.pos"], tensors["tokens.pos"])
    write_snapshot(tmp_path, tensors, {**meta, "seq": 12}, fsync=False)
    assert [s for s, _ in list_snapshots(tmp_path)] == [12, 7]
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(DamagedSnapshot, match="damaged"):
        read_snapshot(path)


def test_packed_arrays_round_trip_and_damage_is_detected():
    arrays = {
        "f": np.arange(6, dtype=np.float32).reshape(3, 2),
        "b": np.array([True, False]),
        "i": np.array([], np.int64),
    }
    spec, blob = pack(arrays)
    back = unpack(spec, blob)
    assert list(back) == ["f", "b", "i"]
    for k, v in arrays.items():
        assert back[k].dtype == v.dtype and back[k].shape == v.shape and (back[k] == v).all()
    with pytest.raises(StoreError, match="runs past the end"):
        unpack(spec, blob[:-3], seq=4)
    with pytest.raises(StoreError, match="left after"):
        unpack(spec, blob + b"x")
    with pytest.raises(ValueError, match="dtype object"):
        pack({"o": np.array([object()])})
