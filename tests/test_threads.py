"""Engine work from several threads and from event loops (DESIGN §11): no lost event, no lost count, no
blocked loop."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable

import numpy as np

import neurograph as ng

CHAT = "signal.input.external.text.chat"


def test_four_threads_emitting_at_once_lose_no_event_and_no_count() -> None:
    eng = ng.Engine(seed=0)
    seen: list[int] = []
    seen_lock = threading.Lock()

    def record(event: ng.Event) -> None:
        with seen_lock:
            seen.append(event.data["token_id"])

    eng.subscribe("signal.input.*", record)
    per_thread, threads = 150, 4
    returned: list[list[int]] = [[] for _ in range(threads)]
    start = threading.Barrier(threads)

    def work(t: int) -> None:
        rng = np.random.default_rng(t)
        start.wait()
        for i in range(per_thread):
            if i % 10 == 0:
                b = eng.emit_batch(CHAT, rng.uniform(-1, 1, (5, 8)))
                returned[t].extend(b.token_ids.tolist())
            else:
                returned[t].append(eng.emit(CHAT, rng.uniform(-1, 1, 8)).token_id)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    total = threads * (per_thread + 15 * 4)  # each thread: 135 singles + 15 batches of 5
    got = [i for r in returned for i in r]
    assert len(got) == total and len(seen) == total
    assert sorted(seen) == sorted(got)
    stats = eng.stats()
    assert stats["signals"] == total and stats["tick"] == total
    assert stats["calls"] == threads * per_thread
    assert eng.bus.stats()["published"] == eng.bus.stats()["delivered"] == total
    ids = set(eng.tokens()["id"])
    assert set(got) <= ids  # every returned id exists


def test_an_async_callback_runs_on_the_loop_it_was_subscribed_from() -> None:
    async def main() -> tuple[int, set[int]]:
        loop_thread = threading.get_ident()
        eng = ng.Engine(seed=0)
        ran_on: set[int] = set()
        done = asyncio.Event()

        async def on_signal(event: ng.Event) -> None:
            ran_on.add(threading.get_ident())
            if len(ran_on) and event.data["token_id"] >= 0:
                done.set()

        eng.subscribe(CHAT, on_signal)
        await asyncio.to_thread(eng.emit, CHAT, [0.1] * 8)  # published from another thread
        await asyncio.wait_for(done.wait(), 5)
        return loop_thread, ran_on

    loop_thread, ran_on = asyncio.run(main())
    assert ran_on == {loop_thread}


def _heartbeat() -> tuple[list[float], asyncio.Event, Callable[[], Awaitable[None]]]:
    """A coroutine that wakes every 2 ms and records how long each wait really took."""
    gaps: list[float] = []
    stop = asyncio.Event()

    async def heartbeat() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(0.002)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    return gaps, stop, heartbeat


async def test_engine_call_runs_off_the_loop_and_a_heartbeat_keeps_beating(tmp_path) -> None:
    eng = ng.Engine(path=tmp_path / "s", durability="full")
    gaps, stop, heartbeat = _heartbeat()

    beat = asyncio.create_task(heartbeat())
    rng = np.random.default_rng(0)
    for _ in range(100):  # each emit fsyncs the log
        r = await eng.call(eng.emit, CHAT, rng.uniform(-1, 1, 8))
        assert r.token_id >= 0
    await eng.call(eng.emit_batch, CHAT, rng.uniform(-1, 1, (2000, 8)))
    stop.set()
    await beat
    eng.close()
    assert eng.stats()["signals"] == 2100
    assert max(gaps) < 0.02, max(gaps)  # the loop is never held by the engine's work


async def test_a_pipeline_burst_with_full_durability_never_blocks_the_loop(tmp_path) -> None:
    eng = ng.Engine(path=tmp_path / "s", durability="full")
    gaps, stop, heartbeat = _heartbeat()

    async with ng.SignalPipeline(eng) as pipe:
        beat = asyncio.create_task(heartbeat())
        outs = await asyncio.gather(*(pipe.process_text(f"message number {i}", user_id=i) for i in range(60)))
        batch = await pipe.process_batch([f"batch text {i}" for i in range(300)])
        stop.set()
        await beat
    eng.close()
    assert len(outs) == 60 and len(batch) == 300
    assert eng.stats()["signals"] == 360
    assert max(gaps) < 0.02, max(gaps)  # each emit fsyncs, on the engine's thread, not the loop
