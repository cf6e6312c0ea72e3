"""Stores: create, continue, open; replay equals the engine that never stopped; snapshots and recovery."""

from __future__ import annotations

import json
import os
import sqlite3
import warnings
from pathlib import Path

import numpy as np
import pytest

import neurograph as ng
from neurograph.errors import StoreError
from neurograph.persist import OPS, STATE, EventLog, read_snapshot, register_op, register_state
from neurograph.persist.snapshot import capture, write_snapshot
from neurograph.persist.store import LOG_FILE, SNAPSHOT_DIR, STORE_FILE

from .workload import CHAT, assert_same_state, clustered, run_workload


def abandon(eng: ng.Engine) -> None:
    """Let go of a store like a killed process: no final snapshot (``Store.close()`` without the engine
    only closes the log and releases the lock)."""
    eng.store.close()


def snapshot_files(path: Path) -> list[Path]:
    return sorted((path / SNAPSHOT_DIR).glob("*.safetensors"))


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "store"


# --- the round trip ---------------------------------------------------------------------------------
@pytest.mark.parametrize("durability", ["full", "normal", "off"])
def test_reopened_store_equals_the_engine_that_never_stopped(store, durability):
    mem = ng.Engine(seed=1)
    run_workload(mem, seed=0, steps=50)
    eng = ng.Engine(seed=1, path=store, durability=durability, snapshot_every=150)
    run_workload(eng, seed=0, steps=50)
    assert_same_state(mem, eng)
    assert eng.store.snapshot_seq > 0 and eng.store.seq > eng.store.snapshot_seq  # a tail to replay
    abandon(eng)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no damaged snapshot, no divergence
        back = ng.Engine.open(store)
    assert_same_state(mem, back)
    # and it goes on exactly like the engine that never stopped
    run_workload(mem, seed=7, steps=20)
    run_workload(back, seed=7, steps=20)
    assert_same_state(mem, back)
    assert back.store.integrity_check() == "ok"


def test_engine_path_continues_a_store(store):
    with ng.Engine(path=store, seed=5) as eng:
        first = eng.emit(CHAT, [0.1] * 8).token_id
    with ng.Engine(path=store) as eng:
        assert eng.seed == 5
        assert eng.emit(CHAT, [0.1] * 8).token_id == first  # familiar: the token came back
        second = eng.emit(CHAT, [-0.5] * 8).token_id
    again = ng.Engine.open(store)
    assert again.token_state.slots_of([first, second]).min() >= 0
    assert again.stats()["signals"] == 3


def test_batches_are_logged_and_replayed_as_batches(store):
    rng = np.random.default_rng(3)
    x = clustered(rng, 200, centers=3)
    mem = ng.Engine()
    mem.emit_batch(CHAT, x)
    eng = ng.Engine(path=store)
    eng.emit_batch(CHAT, x)
    frame = eng.store.log.signals_frame()
    assert frame["seq"].nunique() == 1 and len(frame) == 200  # one record, every row
    assert (frame["token_id"].to_numpy() == mem.tokens()["id"].to_numpy()[frame["token_id"]]).all()
    abandon(eng)
    back = ng.Engine.open(store)
    assert_same_state(mem, back)  # sequential replay would have moved the resonating tokens differently


def test_log_holds_every_field_of_an_emit(store):
    eng = ng.Engine(path=store)
    r = eng.emit(CHAT, [2.0] + [0.25] * 7, priority=200, kind="goal", user="ada")
    rec = list(eng.store.log.records())[-1]
    assert rec.op == "emit" and rec.seq == eng.store.seq
    assert rec.payload["event_type"] == CHAT and rec.payload["meta"] == {"user": "ada"}
    np.testing.assert_array_equal(rec.arrays["vectors"], [[1.0] + [0.25] * 7])  # clamped into the box
    assert rec.arrays["priorities"].tolist() == [200]
    assert rec.arrays["kinds"].tolist() == [ng.ENTITY_KINDS.index("goal")]
    assert rec.arrays["token_ids"].tolist() == [r.token_id]
    assert rec.time > 0


# --- snapshots: schedule, retention, compaction -----------------------------------------------------
def test_snapshot_every_and_retention_compact_the_log(store):
    eng = ng.Engine(path=store, snapshot_every=100, keep_snapshots=2)
    rng = np.random.default_rng(0)
    for _ in range(11):
        eng.emit_batch(CHAT, rng.uniform(-1, 1, (50, 8)))
    files = snapshot_files(store)
    assert len(files) == 2
    seqs = [int(p.stem) for p in files]
    first, last = eng.store.log.bounds()
    assert first == seqs[0] + 1 and last == eng.store.seq  # everything up to the oldest kept is gone
    assert eng.store.snapshot_seq == seqs[1]


def test_snapshot_seconds(store, monkeypatch):
    eng = ng.Engine(path=store, snapshot_seconds=30.0)
    eng.emit(CHAT, [0.0] * 8)
    assert snapshot_files(store) == []
    eng.store._last_time -= 31.0  # as if half a minute had passed
    eng.emit(CHAT, [0.5] * 8)
    assert len(snapshot_files(store)) == 1


def test_save_close_and_context_manager(store):
    eng = ng.Engine(path=store)
    eng.emit(CHAT, [0.3] * 8)
    path = eng.save()
    assert path.exists() and path.parent == store / SNAPSHOT_DIR
    _, meta = read_snapshot(path)
    assert meta["seq"] == eng.store.seq and meta["tick"] == 1
    eng.close()
    eng.close()  # idempotent
    assert eng.store is None
    eng.emit(CHAT, [0.6] * 8)  # still usable in memory, no longer persistent
    with pytest.raises(StoreError, match="no store"):
        eng.save()
    assert ng.Engine.open(store).stats()["signals"] == 1


def test_store_events_are_published(store):
    bus = ng.EventBus()
    seen = []
    bus.subscribe("store.*", lambda e: seen.append(e.event_type), channels="status")
    eng = ng.Engine(path=store, bus=bus, snapshot_every=1)
    eng.emit(CHAT, [0.0] * 8)
    eng.close()
    ng.Engine.open(store, bus=bus)
    assert seen[0] == "store.created"
    assert seen.count("store.snapshot.started") == seen.count("store.snapshot.saved") >= 1
    assert seen[-1] == "store.opened"


def test_replayed_signals_are_not_published_again(store):
    eng = ng.Engine(path=store)
    eng.emit_batch(CHAT, np.zeros((3, 8)))
    abandon(eng)
    bus = ng.EventBus()
    got = []
    bus.subscribe("signal.*", got.append)
    back = ng.Engine.open(store, bus=bus)
    assert back.stats()["signals"] == 3 and got == []
    back.emit(CHAT, [0.0] * 8)
    assert len(got) == 1


# --- recovery ---------------------------------------------------------------------------------------
def _three_snapshots(store: Path) -> tuple[ng.Engine, list[Path]]:
    mem = ng.Engine(seed=2)
    eng = ng.Engine(seed=2, path=store, keep_snapshots=3)
    for seed in range(3):
        for e in (mem, eng):
            run_workload(e, seed=seed, steps=15)
        eng.save()
    for e in (mem, eng):
        run_workload(e, seed=9, steps=10)  # a tail after the newest snapshot
    abandon(eng)
    return mem, snapshot_files(store)


def test_truncated_newest_snapshot_falls_back_to_the_previous_one(store):
    mem, files = _three_snapshots(store)
    newest = files[-1]
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    with pytest.warns(RuntimeWarning, match="damaged snapshot"):
        back = ng.Engine.open(store)
    assert_same_state(mem, back)
    assert not newest.exists() and newest.with_name(newest.name + ".damaged").exists()


def test_corrupted_newest_snapshot_is_detected_by_its_digest(store):
    mem, files = _three_snapshots(store)
    newest = files[-1]
    data = bytearray(newest.read_bytes())
    data[-5] ^= 0x40  # one bit in the tensor data: still parses, the digest catches it
    newest.write_bytes(bytes(data))
    with pytest.warns(RuntimeWarning, match="digest mismatch"):
        back = ng.Engine.open(store)
    assert_same_state(mem, back)


def test_without_any_snapshot_the_log_is_replayed_from_the_creation(store):
    mem = ng.Engine(cdna="explorer", seed=4)
    eng = ng.Engine(cdna="explorer", seed=4, path=store)
    for e in (mem, eng):
        run_workload(e, seed=1, steps=30)
    assert snapshot_files(store) == []
    abandon(eng)
    back = ng.Engine.open(store)
    assert back.cdna.name == "explorer"
    assert_same_state(mem, back)


def test_every_snapshot_damaged_and_log_compacted_is_refused(store):
    eng = ng.Engine(path=store, keep_snapshots=1)
    eng.emit(CHAT, [0.0] * 8)
    eng.close()
    for p in snapshot_files(store):
        p.write_bytes(b"garbage")
    with pytest.warns(RuntimeWarning), pytest.raises(StoreError, match="cannot be recovered"):
        ng.Engine.open(store)


def test_stray_temporary_snapshot_is_removed(store):
    eng = ng.Engine(path=store)
    eng.emit(CHAT, [0.0] * 8)
    eng.close()
    stray = store / SNAPSHOT_DIR / ".000000000099.safetensors.123.tmp"
    stray.write_bytes(b"half a snapshot")
    ng.Engine.open(store)
    assert not stray.exists()


def test_cdna_history_and_rollback_survive_a_restart(store):
    eng = ng.Engine(path=store, cdna="analyst")
    eng.update_cdna(novelty_threshold=0.05)
    eng.set_cdna("creative")
    eng.update_cdna(learning_rate=0.2)
    eng.rollback_cdna()
    versions = eng.history.to_dict()["versions"]
    log = [(e["action"], e["version"], e["hash"], e["time"]) for e in eng.history.log]
    abandon(eng)
    back = ng.Engine.open(store)
    assert back.history.to_dict()["versions"] == versions
    assert [(e["action"], e["version"], e["hash"]) for e in back.history.log] == [x[:3] for x in log]
    assert [e["time"] for e in back.history.log] == pytest.approx([x[3] for x in log], abs=1.0)
    assert back.cdna.name == "creative"
    assert back.rollback_cdna().novelty_threshold == 0.05  # one version back, after the restart
    back.close()
    again = ng.Engine.open(store)
    assert again.cdna.name == "analyst" and again.cdna.novelty_threshold == 0.05
    assert again.update_cdna(mass_gain=2.0).version == 5  # above every version seen (4): never reused


# --- refusals ---------------------------------------------------------------------------------------
def test_open_on_a_missing_path_says_so(tmp_path):
    with pytest.raises(StoreError, match=r"no neurograph store .* does not exist"):
        ng.Engine.open(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreError, match=r"no store\.json"):
        ng.Engine.open(tmp_path / "empty")


def test_path_that_is_something_else_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="not a directory"):
        ng.Engine(path=tmp_path / "file")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "notes.txt").write_text("mine")
    with pytest.raises(StoreError, match="not a neurograph store"):
        ng.Engine(path=tmp_path / "dir")
    assert (tmp_path / "dir" / "notes.txt").read_text() == "mine"


def test_newer_format_in_store_json_is_refused(store):
    ng.Engine(path=store).close()
    body = json.loads((store / STORE_FILE).read_text())
    body["format_version"] = 99
    (store / STORE_FILE).write_text(json.dumps(body))
    with pytest.raises(StoreError, match=r"newer neurograph .*version 99"):
        ng.Engine.open(store)


def test_newer_format_in_a_snapshot_is_refused(store):
    eng = ng.Engine(path=store)
    eng.emit(CHAT, [0.0] * 8)
    tensors, meta = capture(eng, eng.store.seq + 5)
    eng.close()
    meta["format_version"] = 99
    write_snapshot(store / SNAPSHOT_DIR, tensors, meta)
    with pytest.raises(StoreError, match="newer neurograph"):
        ng.Engine.open(store)


def test_newer_format_in_the_log_is_refused(store):
    ng.Engine(path=store).close()
    with sqlite3.connect(store / LOG_FILE) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'format_version'")
    with pytest.raises(StoreError, match="newer neurograph"):
        ng.Engine.open(store)


def test_a_store_is_held_by_one_engine_at_a_time(store):
    eng = ng.Engine(path=store)
    with pytest.raises(StoreError, match="in use"):
        ng.Engine.open(store)
    eng.close()
    ng.Engine.open(store).close()


def test_unknown_operation_in_the_log_is_refused(store):
    eng = ng.Engine(path=store)
    eng.store.log.append(eng.store.seq + 1, "frobnicate", {"x": 1})
    abandon(eng)
    with pytest.raises(StoreError, match="'frobnicate'"):
        ng.Engine.open(store)


def test_interrupted_creation_is_redone_but_a_damaged_store_is_not(store):
    ng.Engine(path=store, seed=3).close()
    (store / STORE_FILE).unlink()  # as if killed before the creation completed (only the init record)
    for name in os.listdir(store / SNAPSHOT_DIR):
        (store / SNAPSHOT_DIR / name).unlink()
    log = EventLog(store / LOG_FILE)
    log.compact(0)
    log.close()
    eng = ng.Engine(path=store, seed=8)
    assert eng.seed == 8 and (store / STORE_FILE).exists()
    eng.emit(CHAT, [0.0] * 8)
    eng.emit(CHAT, [0.9] * 8)
    abandon(eng)
    (store / STORE_FILE).unlink()  # now the log holds signals: never wiped
    with pytest.raises(StoreError, match="damaged store"):
        ng.Engine(path=store)


def test_cdna_argument_is_ignored_with_a_warning_when_continuing(store):
    ng.Engine(path=store, cdna="analyst").close()
    with pytest.warns(UserWarning, match="its own CDNA"):
        eng = ng.Engine(path=store, cdna="explorer")
    assert eng.cdna.name == "analyst"


# --- divergence, failures, extension ----------------------------------------------------------------
def test_a_change_that_was_not_logged_is_reported_at_replay(store):
    eng = ng.Engine(path=store)
    v = [0.2] * 8
    first = eng.emit(CHAT, v).token_id
    slot = eng.token_state.slots_of([first])
    eng.token_state.scatter("pos", slot, np.full((1, 8), -0.9, np.float32))  # moved behind the log's back
    eng.index.invalidate()
    assert eng.emit(CHAT, v).is_novel
    abandon(eng)
    with pytest.warns(RuntimeWarning, match="differ from the logged ones"):
        ng.Engine.open(store)


def test_a_log_write_failure_falls_back_to_a_snapshot(store):
    eng = ng.Engine(path=store)
    eng.emit(CHAT, [0.1] * 8)
    eng.store.log._conn.close()  # the log can no longer be written (a failing disk)
    with pytest.warns(RuntimeWarning, match="compaction failed"):
        r = eng.emit(CHAT, [0.7] * 8)  # applied; saved by a snapshot instead
    assert eng.store.snapshot_seq == eng.store.seq
    abandon(eng)
    back = ng.Engine.open(store)
    assert back.token_state.slots_of([r.token_id])[0] >= 0


def test_register_op_extends_the_replay(store):
    calls = []

    @register_op("test.marked")
    def _replay(engine, rec):
        calls.append(rec.payload["label"])
        engine.tick += 1
        return 0

    try:
        eng = ng.Engine(path=store)
        eng.tick += 1
        eng._record("test.marked", {"label": "here"})
        abandon(eng)
        back = ng.Engine.open(store)
        assert calls == ["here"] and back.tick == 1
    finally:
        OPS.pop("test.marked")


def test_register_state_carries_engine_state_in_snapshots(store):
    register_state("test_counter")
    register_state("test_nested", lambda e: e.test_box["n"], lambda e, v: setattr(e, "test_box", {"n": v}))
    try:
        eng = ng.Engine(path=store)  # the init record: the attributes do not exist yet, they are skipped
        eng.test_counter, eng.test_box = 41, {"n": 7}
        eng.save()
        eng.close()
        back = ng.Engine.open(store)
        assert back.test_counter == 41 and back.test_box == {"n": 7}
    finally:
        STATE.pop("test_counter")
        STATE.pop("test_nested")


def test_when_neither_log_nor_snapshot_can_be_written_the_call_says_so(store):
    eng = ng.Engine(path=store)
    eng.emit(CHAT, [0.1] * 8)
    eng.store.log._conn.close()  # the log can no longer be written ...
    snaps = store / SNAPSHOT_DIR
    snaps.rename(store / "moved")
    snaps.write_text("in the way")  # ... nor can snapshots
    with pytest.raises(StoreError, match=r"could not be logged .* nor snapshotted"):
        eng.emit(CHAT, [0.4] * 8)
    assert eng.tick == 2  # the signal was applied in memory
    snaps.unlink()
    (store / "moved").rename(snaps)
    with pytest.warns(RuntimeWarning, match="compaction failed"):
        r = eng.emit(CHAT, [0.7] * 8)  # the next call saves everything as a snapshot
    abandon(eng)
    back = ng.Engine.open(store)
    assert back.tick == 3 and back.token_state.slots_of([r.token_id])[0] >= 0
