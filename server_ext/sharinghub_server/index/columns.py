"""Property values held in memory, by column, to count conjunctions of property tests.

Why: counting "eo:cloud_cover BETWEEN 65.6 AND 80.2 AND license = 'MIT'" in SQL intersects
the two tests' matches row by row (an IN list of one, a lookup per row of the other): ~0.4 us
a row, 9-14 ms at 100,000 items and 0.2-0.9 s at 1,000,000, where each test alone counts in
a fraction of a millisecond from its index range. Here each tested property's rows of one
kind are read once per store generation (until the next write) as its values in the index's
order beside their items' positions among all items; a test is then ranges of that list
(bisection), and the conjunction a mask of the items: well under a millisecond. Date ranges
join them from every item's [start, end], read once per generation likewise.

The values are Python objects in ``item_props``' own order: bisection compares them as SQLite
did (numbers exactly, ints with floats; texts by code point, which is the order of their
UTF-8 bytes, SQLite's BINARY collation), so a count here is the SQL count.
"""

from __future__ import annotations

import bisect
import functools
import logging
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

#: columns kept per generation (at 1,000,000 items, 8 MB a million rows, besides the values:
#: the positions of their items; every rowid, 8 MB; the items' [start, end], 16 MB)
_MAX_COLUMNS = 8

#: rows made into an array at once (about 3 ms of the GIL held)
_SLICE = 16_384

#: a test's rows: ranges (low, low included, high, high included) of one kind's values,
#: None for an open end
Range = tuple[Any, bool, Any, bool]


class ColumnTest:
    """A test of one property's ``item_props`` rows of one kind: the item passes when one of
    its rows' values is in one of ``ranges``."""

    __slots__ = ("kind", "name", "ranges")

    def __init__(self, name: str, kind: int, ranges: list[Range]) -> None:
        self.name, self.kind, self.ranges = name, kind, ranges


class TimeTest:
    """A date range: the item's [start, end] meets [low, high] (``items.start <= high AND
    items.end >= low``; an end may be infinite; undated items never pass)."""

    __slots__ = ("high", "low")

    def __init__(self, low: float, high: float) -> None:
        self.low, self.high = low, high


#: the key of the items' [start, end] among the columns (property columns: (code, kind))
TIMES = (-1, -1)

#: a test the columns run: a property's (its name's code, the test), or a date range
Test = tuple[int, ColumnTest] | TimeTest


def _key(test: Test) -> tuple[int, int]:
    return TIMES if isinstance(test, TimeTest) else (test[0], test[1].kind)


class _Times:
    """Every item's start and end (NaN: undated), in the order of positions."""

    __slots__ = ("end", "start")

    def __init__(self, start: Any, end: Any) -> None:
        self.start, self.end = start, end

    def mask(self, test: TimeTest, size: int) -> Any:
        """Whether each item (by position; ``size`` of them) passes ``test``."""
        import numpy as np

        with np.errstate(invalid="ignore"):  # (NaN compares false, as NULL does)
            return np.logical_and(self.start <= test.high, self.end >= test.low)


class _Column:
    """One property's distinct values of one kind, in ``item_props``' order, and the
    positions of the items of their rows, grouped by value (``starts[i]``: the first row of
    ``values[i]``)."""

    __slots__ = ("positions", "starts", "values")

    def __init__(self, values: list[Any], starts: list[int], positions: Any) -> None:
        self.values, self.starts, self.positions = values, starts, positions

    def mask(self, test: ColumnTest, size: int) -> Any:
        """Whether each item (by position) passes ``test``."""
        import numpy as np

        passing = np.zeros(size, dtype=bool)
        passing[self.rows(test)] = True
        return passing

    def rows(self, test: ColumnTest) -> Any:
        """Positions of the items of the rows passing ``test`` (an item may repeat)."""
        import numpy as np

        values, parts = self.values, []
        for low, low_in, high, high_in in test.ranges:
            start = 0 if low is None else (bisect.bisect_left(values, low) if low_in
                                           else bisect.bisect_right(values, low))
            stop = len(values) if high is None else (
                bisect.bisect_right(values, high) if high_in else bisect.bisect_left(values, high))
            if start < stop:
                parts.append(self.positions[self.starts[start]:self.starts[stop]])
        return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)


class Columns:
    """The columns of one store for its latest generation read, shared by its reader threads.

    A count never waits for a column: one not held yet is read by a thread of its own (in a
    transaction of its own, whose generation it is held for), while the count asks SQL; once
    held, the next counts use it, until a write makes a newer generation. ``read(fn)`` calls
    ``fn(conn, generation)`` in a read transaction of the store."""

    def __init__(self, read: Callable[[Callable[[sqlite3.Connection, int], None]], None]) -> None:
        self._read = read
        self._lock = threading.Lock()
        self._generation: int | None = None
        self._rowids: Any = None  # every items.rowid, ascending (a position is an index here)
        self._columns: OrderedDict[tuple[int, int], _Column | _Times] = OrderedDict()
        self._wanted: set[tuple[int, int]] = set()
        self._builder: threading.Thread | None = None

    def count(self, generation: int, tests: list[Test]) -> int | None:
        """The items passing every test at ``generation``; None when a column is not held
        for it."""
        import numpy as np

        found = self._mask(generation, tests)
        if found is None:
            return None
        mask, rowids = found
        return int(np.count_nonzero(mask)) if mask is not None else len(rowids)

    def ends(self, generation: int, tests: list[Test], n: int, newest: bool,
             shift: int) -> tuple[int, Any] | None:
        """(how many items pass every test, the rowids of the ``n`` passing items nearest
        the newest end of the rowids - or the oldest - and of every other passing item whose
        rowid has the same value past ``shift`` bits as the nth's); None when a column is not
        held for ``generation``. With rowids that are recency keys (seconds, then
        ``shift`` bits of order within one), these are the items a page of ``n`` in date
        order is among, whatever the order of items within a second."""
        import numpy as np

        found = self._mask(generation, tests)
        if found is None:
            return None
        mask, rowids = found
        passing = rowids[mask] if mask is not None else rowids  # (ascending)
        if n <= 0 or not len(passing):
            return len(passing), passing[:0]
        if newest:
            last = passing[max(0, len(passing) - n)] >> shift
            return len(passing), passing[np.searchsorted(passing, last << shift):]
        last = passing[min(len(passing), n) - 1] >> shift
        return len(passing), passing[:np.searchsorted(passing, (last + 1) << shift)]

    def _mask(self, generation: int, tests: list[Test]) -> tuple[Any, Any] | None:
        """(the mask of the items passing every test, None for no test; every rowid) at
        ``generation``, None when a column is not held for it."""
        import numpy as np

        keys = [_key(test) for test in tests]
        with self._lock:
            held = self._generation == generation and self._rowids is not None
            columns = [self._columns.get(key) for key in keys] if held else []
            rowids = self._rowids
            if not held or None in columns:
                return None
            for key in keys:
                self._columns.move_to_end(key)
        mask = None
        for column, test in zip(columns, tests, strict=True):
            passing = column.mask(test if isinstance(test, TimeTest) else test[1], len(rowids))
            mask = passing if mask is None else np.logical_and(mask, passing, out=mask)
        return mask, rowids

    def wait(self, timeout: float = 60.0) -> None:
        """Wait for the columns being read (tests)."""
        with self._lock:
            builder = self._builder
        if builder is not None:
            builder.join(timeout)

    def want(self, tests: list[Test]) -> None:
        """Have the columns of these tests read at the store's latest generation, by a thread
        of their own (one at a time; it ends when nothing more is wanted)."""
        with self._lock:
            self._wanted.update(_key(test) for test in tests)
            if self._builder is None:
                self._builder = threading.Thread(target=self._build, name="sharinghub-columns",
                                                 daemon=True)
                self._builder.start()

    def _build(self) -> None:
        try:
            while True:
                with self._lock:
                    if not self._wanted:
                        return
                    wanted, self._wanted = list(self._wanted), set()
                self._read(functools.partial(self._read_columns, keys=wanted))
        except Exception as exc:  # (a closed store, an interrupted read): SQL counts
            log.debug("index columns not read: %s", exc)
        finally:
            with self._lock:
                self._builder = None
                self._wanted.clear()

    def _read_columns(self, conn: sqlite3.Connection, generation: int,
                      keys: list[tuple[int, int]]) -> None:
        import numpy as np

        with self._lock:
            current = self._generation == generation and self._rowids is not None
            rowids = self._rowids if current else None
            keys = [key for key in keys if not (current and key in self._columns)]
        # read by SQLite, a few rows of long texts, rather than a Python tuple per row: the
        # GIL is free meanwhile (the requests' threads run), and at 1,000,000 items a column
        # takes about half the time (numbers, exact, come back as they are)
        if rowids is None:
            rowids = np.sort(_integers(conn.execute(
                "SELECT group_concat(rowid, ' ') FROM items").fetchone()[0]))
        read: dict[tuple[int, int], _Column | _Times] = {}
        if TIMES in keys:  # (floats: read as they are)
            cursor = conn.execute('SELECT start, "end" FROM items ORDER BY rowid')
            # made into arrays a slice at a time: made at once, the array of 1,000,000 rows
            # held the GIL for 150 ms, stalling every other thread (the server's too)
            parts = [np.empty((0, 2))]
            while rows := cursor.fetchmany(_SLICE):
                parts.append(np.array(rows, dtype=np.float64).reshape(-1, 2))  # (None: NaN)
            times = np.concatenate(parts)
            read[TIMES] = _Times(times[:, 0].copy(), times[:, 1].copy())
        for code, kind in keys:
            if (code, kind) == TIMES:
                continue
            groups = conn.execute(
                "SELECT value, count(*), group_concat(item, ' ') FROM item_props "
                "WHERE name = ? AND kind = ? GROUP BY value ORDER BY value",
                (code, kind)).fetchall()
            starts = [0]
            for _, rows_of_value, _ in groups:
                starts.append(starts[-1] + rows_of_value)
            items = _integers(" ".join(text for _, _, text in groups))
            if len(items) != starts[-1]:  # (never seen: then SQL counts)
                raise ValueError(f"{len(items)} items listed for {starts[-1]} rows")
            read[(code, kind)] = _Column([value for value, _, _ in groups], starts,
                                         np.searchsorted(rowids, items))
        with self._lock:
            if self._generation is not None and self._generation > generation:
                return  # (a newer generation is held already)
            if self._generation != generation:
                self._generation, self._rowids, self._columns = generation, rowids, OrderedDict()
            self._columns.update(read)
            while len(self._columns) > _MAX_COLUMNS:
                self._columns.popitem(last=False)


def _integers(text: str | None) -> Any:
    """The integers of SQLite's ``group_concat(x, ' ')`` (None: of no rows)."""
    import numpy as np

    return np.fromstring(text or "", dtype=np.int64, sep=" ")
