"""Queued index writes: batches queued while a write is under way are written together, in
order, each whole; callers that wait see their batch written, callers that do not see a
failure at their next call; closing fails what is queued and keeps what was written."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from sharinghub_server.index import ProjectUpdate, Query, open_store
from sharinghub_server.index.store import StoreClosed
from sharinghub_server.index.write_queue import WriteQueue
from tests.support.polling import poll


class Recorder:
    """A writer that records each transaction's batches; ``hold`` keeps it inside its next
    write until released, ``bad`` batches fail their transaction."""

    def __init__(self) -> None:
        self.transactions: list[list[str]] = []
        self.hold = threading.Event()
        self.inside = threading.Event()
        self.bad: set[str] = set()

    def write(self, batches: list[str]) -> None:
        self.inside.set()
        self.hold.wait(30)
        if self.bad & set(batches):
            raise ValueError(f"cannot write {sorted(self.bad & set(batches))}")
        self.transactions.append(list(batches))


def _queue(recorder: Recorder, **kwargs) -> WriteQueue[str]:
    return WriteQueue(recorder.write, lambda batch: 1, **kwargs)


def _behind_a_held_write(queue: WriteQueue[str], rec: Recorder, batches: str) -> None:
    """Queue "a", then ``batches`` once the writer is inside its (held) write of "a"."""
    queue.put("a", wait=False)
    poll(rec.inside.is_set, "the first write")
    for batch in batches:
        queue.put(batch, wait=False)


def _in_thread(fn) -> threading.Thread:
    thread = threading.Thread(target=fn, daemon=True)
    thread.start()
    return thread


def test_batches_queued_during_a_write_go_together_in_order() -> None:
    rec = Recorder()
    queue = _queue(rec, linger=0)
    _behind_a_held_write(queue, rec, "bcde")
    rec.hold.set()
    queue.flush()
    assert rec.transactions == [["a"], ["b", "c", "d", "e"]]
    assert [weight for weight, _ in queue.history] == [1, 4]


def test_a_waiting_put_returns_once_its_batch_is_written() -> None:
    rec = Recorder()
    rec.hold.set()
    queue = _queue(rec)
    queue.put("a", wait=False)
    queue.put("b")  # (no lingering: a caller waits)
    assert rec.transactions[-1][-1] == "b"


def test_groups_are_bounded() -> None:
    rec = Recorder()
    queue = _queue(rec, group=2, limit=100, linger=0)
    _behind_a_held_write(queue, rec, "bcdef")
    rec.hold.set()
    queue.flush()
    assert rec.transactions == [["a"], ["b", "c"], ["d", "e"], ["f"]]


def test_a_failed_batch_fails_alone_and_is_reported_once() -> None:
    rec = Recorder()
    rec.bad = {"c"}
    queue = _queue(rec, linger=0)
    _behind_a_held_write(queue, rec, "bcd")
    rec.hold.set()
    with pytest.raises(ValueError, match=r"\['c'\]"):
        queue.flush()
    queue.flush()  # (reported once)
    assert rec.transactions == [["a"], ["b"], ["d"]]  # the group failed; each alone then


def test_a_waiting_caller_gets_its_own_failure() -> None:
    rec = Recorder()
    rec.hold.set()
    rec.bad = {"x"}
    queue = _queue(rec)
    with pytest.raises(ValueError):
        queue.put("x")
    queue.flush()  # (the waiting caller had it: nothing left to report)
    queue.put("y")
    assert rec.transactions == [["y"]]


def test_put_waits_while_the_queue_is_full() -> None:
    rec = Recorder()
    queue = _queue(rec, group=10, limit=3, linger=0)
    _behind_a_held_write(queue, rec, "bc")
    blocked = _in_thread(lambda: queue.put("d", wait=False))
    blocked.join(0.5)
    assert blocked.is_alive()  # (a, b, c queued: the limit)
    rec.hold.set()
    blocked.join(30)
    assert not blocked.is_alive()
    queue.flush()
    assert [b for t in rec.transactions for b in t] == ["a", "b", "c", "d"]


def test_the_writer_lingers_for_more_batches_but_not_for_a_flush() -> None:
    rec = Recorder()
    rec.hold.set()
    queue = _queue(rec, group=100, linger=3600)
    for batch in "abc":
        queue.put(batch, wait=False)
    flusher = _in_thread(queue.flush)
    flusher.join(30)
    assert not flusher.is_alive()
    assert rec.transactions == [["a", "b", "c"]]


def test_closing_fails_queued_batches_and_waiting_callers() -> None:
    rec = Recorder()
    queue = _queue(rec, linger=0)
    queue.put("a", wait=False)
    poll(rec.inside.is_set, "the first write")
    queue.put("b", wait=False)
    errors: list[BaseException] = []

    def waiting() -> None:
        try:
            queue.put("c")
        except StoreClosed as exc:
            errors.append(exc)

    waiter = _in_thread(waiting)
    poll(lambda: len(queue._queue) == 2, "c queued")
    queue.close()
    waiter.join(30)
    assert len(errors) == 1
    with pytest.raises(StoreClosed):
        queue.put("d", wait=False)
    rec.hold.set()
    queue.join()
    assert rec.transactions == [["a"]]  # (the write under way was not stopped by this fake)


# --- through the SQLite store -----------------------------------------------------------------


def _update(i: int) -> ProjectUpdate:
    item = {"type": "Feature", "stac_version": "1.1.0", "id": f"g/p{i}", "collection": "dataset",
            "geometry": None, "properties": {"title": f"project {i}",
                                             "datetime": f"2020-01-{1 + i % 28:02d}T00:00:00Z"},
            "links": [], "assets": {}}
    return ProjectUpdate(f"g/p{i}", {"n": i}, [item])


def _ids(store) -> set[str]:
    return {item["id"] for item in store.search(Query(limit=1000)).items}


def _locked(path: Path) -> sqlite3.Connection:
    """Another connection holding the database's write lock (the store's writer waits)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    return conn


def test_queued_batches_are_written_together_and_visible_after_flush(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite"
    store = open_store(f"sqlite:///{path}")
    try:
        lock = _locked(path)
        for i in range(5):
            store.apply("gitlab", [_update(i)], [], wait=False)
        lock.execute("ROLLBACK")
        store.flush()
        assert _ids(store) == {f"g/p{i}" for i in range(5)}
        assert len(store.write_costs()) < 5
        assert store.project_states("gitlab")["g/p4"] == {"n": 4}
    finally:
        store.close()


def test_project_states_wait_for_queued_batches(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/q.sqlite")
    try:
        store.apply("gitlab", [_update(i) for i in range(3)], [], wait=False)
        store.apply("gitlab", [], ["g/p1"], wait=False)
        assert set(store.project_states("gitlab")) == {"g/p0", "g/p2"}
    finally:
        store.close()


def test_a_bad_item_is_refused_by_apply_itself(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/q.sqlite")
    try:
        bad = _update(1)
        del bad.items[0]["id"]
        with pytest.raises(ValueError, match="string id"):
            store.apply("gitlab", [_update(0), bad], [], wait=False)
        store.flush()
        assert _ids(store) == set() and store.project_states("gitlab") == {}
    finally:
        store.close()


def test_closing_with_queued_batches_loses_them_whole(tmp_path: Path) -> None:
    """What a stop (or a kill) loses is whole batches, each with its project states: the
    next crawl fetches those projects again."""
    path = tmp_path / "q.sqlite"
    store = open_store(f"sqlite:///{path}")
    store.apply("gitlab", [_update(0)], [])
    lock = _locked(path)
    store.apply("gitlab", [_update(1)], [], wait=False)
    poll(lambda: store._queue._writing, "the writer waiting for the database's lock")
    store.apply("gitlab", [_update(2)], [], wait=False)
    closing = _in_thread(store.close)
    poll(lambda: store._queue._closed, "the store closing")
    lock.execute("ROLLBACK")
    lock.close()
    closing.join(60)
    assert not closing.is_alive()
    with pytest.raises(StoreClosed):
        store.flush()
    store = open_store(f"sqlite:///{path}")
    try:
        ids, states = _ids(store), set(store.project_states("gitlab"))
        assert "g/p0" in ids and "g/p2" not in ids | states
        assert ("g/p1" in ids) == ("g/p1" in states)  # (taken before the close: whole or not)
    finally:
        store.close()


def test_transactions_are_sized_to_last_a_few_seconds() -> None:
    queue = _queue(Recorder(), group=20_000, seconds=5.0, smallest=1_000)
    queue._adapt(20_000, 10.0)  # a full group took 10 s: half as many next time
    assert queue.group == 10_000
    queue._adapt(2_000, 0.1)  # a small group says little about a full one
    assert queue.group == 10_000
    queue._adapt(10_000, 1.0)  # faster again (a smaller index, say): back up to the largest
    assert queue.group == 20_000
    queue._adapt(20_000, 500.0)
    assert queue.group == 1_000  # (never below the smallest)


def test_the_writer_empties_a_big_wal(tmp_path: Path, monkeypatch) -> None:
    """Passive checkpoints cannot empty the WAL while transactions follow one another; the
    writer does, between two, once it is past the limit."""
    import sharinghub_server.index.sqlite as sqlite_store

    path = tmp_path / "q.sqlite"
    wal = Path(f"{path}-wal")
    store = open_store(f"sqlite:///{path}")
    try:
        store.apply("gitlab", [_update(i) for i in range(50)], [])
        assert wal.stat().st_size > 0
        monkeypatch.setattr(sqlite_store, "_WAL_LIMIT", 0)
        store.apply("gitlab", [_update(i) for i in range(50, 100)], [])
        assert wal.stat().st_size == 0
        assert len(_ids(store)) == 100
    finally:
        store.close()
