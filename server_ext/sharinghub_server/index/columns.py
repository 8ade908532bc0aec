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

Free text joins them by word: the items that have a word (one of the ``MAX_WORDS`` most
frequent, read once start-up has settled, or one whose count by SQL took long), a bit each.
Counting a common word's matches among a few thousand items found otherwise (a box and a date
range) made SQL build an IN list of all its matches in the range: at 1,000,000 items,
"detection" (223,542 items) in a box and four years took 58 ms, 17 of them for the box.

Which columns are held is remembered in a file beside the index (properties by name), so that
a restarted server reads them again before its users' first filters (``Columns.recall``), as
PostgreSQL's autoprewarm reloads the pages its buffers held: at 1,000,000 items, the first
counts of conjunctions by SQL took 0.2-0.3 s each while their columns were read.
"""

from __future__ import annotations

import bisect
import functools
import json
import logging
import os
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: columns kept per generation (at 1,000,000 items, 8 MB a million rows, besides the values:
#: the positions of their items; every rowid, 8 MB; the items' [start, end], 16 MB)
_MAX_COLUMNS = 8

#: words whose items are held, a bit each (at 1,000,000 items, 125 KB a word)
MAX_WORDS = 32

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


def _word_key(word: str) -> tuple[str, str]:
    """The key of a word's items among the columns wanted."""
    return ("word", word)


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


class _Postings:
    """The items that have one word (in any field): a bit per item, by position."""

    __slots__ = ("bits",)

    def __init__(self, bits: Any) -> None:
        self.bits = bits  # (numpy.packbits of the items' booleans)

    def mask(self, size: int) -> Any:
        """Whether each item (by position; ``size`` of them) has the word."""
        import numpy as np

        return np.unpackbits(self.bits, count=size).view(bool)


class Columns:
    """The columns of one store for its latest generation read, shared by its reader threads.

    A count never waits for a column: one not held yet is read by a thread of its own (in a
    transaction of its own, whose generation it is held for), while the count asks SQL; once
    held, the next counts use it, until a write makes a newer generation. ``read(fn)`` calls
    ``fn(conn, generation)`` in a read transaction of the store."""

    def __init__(self, read: Callable[[Callable[[sqlite3.Connection, int], None]], None],
                 memory: Path | None = None) -> None:
        self._read = read
        #: the file remembering the held columns (None: not remembered)
        self._memory = memory
        self._names: dict[tuple[int, int], str] = {}  # a property column's property
        self._lock = threading.Lock()
        self._generation: int | None = None
        self._rowids: Any = None  # every items.rowid, ascending (a position is an index here)
        self._columns: OrderedDict[tuple[int, int], _Column | _Times] = OrderedDict()
        self._words: OrderedDict[str, _Postings] = OrderedDict()
        #: the columns and words held most recently (least recently used first), whatever
        #: their generation: what :meth:`refresh` reads again, and the memory file names (a
        #: newer generation's first read, of one column, holds only that one)
        self._recent_columns: OrderedDict[tuple[int, int], None] = OrderedDict()
        self._recent_words: OrderedDict[str, None] = OrderedDict()
        self._wanted: dict[tuple[Any, Any], None] = {}  # (in the order wanted)
        self._builder: threading.Thread | None = None
        self._closed = threading.Event()  # (the store's close: nothing more is read)

    def count(self, generation: int, tests: list[Test], words: Sequence[str] = ()) -> int | None:
        """The items passing every test and, unless ``words`` is empty, having one of
        ``words``, at ``generation``; None when a column or a word's items are not held for
        it."""
        import numpy as np

        found = self._mask(generation, tests, words)
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

    def holds(self, generation: int, tests: list[Test], words: Sequence[str] = ()) -> bool:
        """Whether the columns of ``tests`` and the items of ``words`` are held for
        ``generation``."""
        with self._lock:
            return (self._generation == generation and self._rowids is not None
                    and all(_key(test) in self._columns for test in tests)
                    and all(word in self._words for word in words))

    def count_among(self, generation: int, found: str | None, tests: list[Test],
                    words: list[str]) -> int | None:
        """:meth:`count` among the items ``found``: their rowids as SQLite's
        ``group_concat(rowid, ' ')`` lists them (an item may repeat)."""
        import numpy as np

        held = self._mask(generation, tests, words)
        if held is None:
            return None
        mask, rowids = held
        found = np.unique(_integers(found))
        if not len(rowids):
            return None if len(found) else 0
        inside = np.minimum(np.searchsorted(rowids, found), len(rowids) - 1)
        if not np.array_equal(rowids[inside], found):
            return None  # (never seen: an item not of this generation; SQL counts)
        return len(found) if mask is None else int(np.count_nonzero(mask[inside]))

    def _mask(self, generation: int, tests: list[Test],
              words: Sequence[str] = ()) -> tuple[Any, Any] | None:
        """(the mask of the items passing every test and having one of ``words``, None for
        no test and no word; every rowid) at ``generation``, None when a column or a word's
        items are not held for it."""
        import numpy as np

        keys = [_key(test) for test in tests]
        with self._lock:
            held = self._generation == generation and self._rowids is not None
            columns = [self._columns.get(key) for key in keys] if held else []
            postings = [self._words.get(word) for word in words] if held else []
            rowids = self._rowids
            if not held or None in columns or None in postings:
                return None
            for key in keys:
                self._columns.move_to_end(key)
                _touch(self._recent_columns, key, _MAX_COLUMNS)
            for word in words:
                self._words.move_to_end(word)
                _touch(self._recent_words, word, MAX_WORDS)
        masks = [column.mask(test if isinstance(test, TimeTest) else test[1], len(rowids))
                 for column, test in zip(columns, tests, strict=True)]
        if postings:  # (any of the words)
            masks.append(np.logical_or.reduce([p.mask(len(rowids)) for p in postings]))
        mask = masks[0] if masks else None
        for passing in masks[1:]:
            mask = np.logical_and(mask, passing, out=mask)
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
            for test in tests:
                if not isinstance(test, TimeTest):
                    self._names[_key(test)] = test[1].name
        self._start([_key(test) for test in tests])

    def want_words(self, words: list[str]) -> None:
        """Have the items of these words (each one token: lower case ASCII letters and digits)
        read at the store's latest generation, as :meth:`want` has columns read."""
        self._start([_word_key(word) for word in words])

    def refresh(self, words: Sequence[str] = ()) -> None:
        """Have the columns and words held read again at the store's latest generation, by
        the thread that reads them (those held for it already are not read again), with
        ``words`` first among the words (``MAX_WORDS`` in all).
        Held data describes one generation: after a crawl's writes, without this, each would
        wait for a slow count by SQL to want it again (at 1,000,000 items, 0.2-0.3 s each)."""
        with self._lock:
            columns = list(self._recent_columns)
            words = list(dict.fromkeys([*words, *reversed(self._recent_words)]))[:MAX_WORDS]
        if keys := columns + [_word_key(word) for word in words]:
            self._start(keys)

    def close(self) -> None:
        """Read nothing more: a read under way stops between two of its statements (the
        store's close interrupts the one running), the words' many short ones included."""
        with self._lock:
            self._closed.set()
            self._wanted.clear()

    def _start(self, keys: list[tuple[Any, Any]]) -> None:
        """Have these keys read by the builder thread (started if none runs)."""
        with self._lock:
            if self._closed.is_set():
                return
            self._wanted.update(dict.fromkeys(keys))
            if self._builder is None:
                self._builder = threading.Thread(target=self._build, name="sharinghub-columns",
                                                 daemon=True)
                self._builder.start()

    def recall(self, code: Callable[[str], int | None]) -> int:
        """Have the columns held when the memory was last written read again (``code``: a
        property's code, None for a property no item has any more); how many."""
        if self._memory is None:
            return 0
        try:
            memory = json.loads(self._memory.read_text())
        except FileNotFoundError:
            return 0
        except (OSError, ValueError) as exc:
            log.warning("index columns not recalled from %s: %s", self._memory, exc)
            return 0
        held = memory.get("held") if isinstance(memory, dict) else None
        if not isinstance(held, list):
            log.warning("index columns not recalled from %s: no list of held columns",
                        self._memory)
            return 0
        tests: list[Test] = []
        for entry in held:
            if entry == "dates":
                tests.append(TimeTest(0.0, 0.0))
            elif (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)
                  and type(entry[1]) is int and (found := code(entry[0])) is not None):
                tests.append((found, ColumnTest(entry[0], entry[1], [])))
        tests = tests[-_MAX_COLUMNS:]
        if tests:
            self.want(tests)
        return len(tests)

    def _remember(self, keys: list[tuple[int, int]]) -> None:
        """Write the held columns (least recently used first) to the memory file, replaced
        whole: a property's name and kind, or "dates"."""
        if self._memory is None:
            return
        with self._lock:
            held = ["dates" if key == TIMES else [self._names[key], key[1]] for key in keys
                    if key == TIMES or key in self._names]
        part = self._memory.with_name(f"{self._memory.name}.{threading.get_ident()}.part")
        try:
            part.write_text(json.dumps({"held": held}))
            os.replace(part, self._memory)
        except OSError as exc:  # (a read-only folder: not remembered)
            log.debug("index columns not remembered in %s: %s", self._memory, exc)
            part.unlink(missing_ok=True)

    def _build(self) -> None:
        try:
            while True:
                with self._lock:
                    if not self._wanted:
                        # (ended in the lock: a key wanted from now on starts another thread)
                        self._builder = None
                        return
                    wanted, self._wanted = list(self._wanted), {}
                # the columns before the words, each part held once read: at 1,000,000 items
                # the 32 words take ~3 s, while SQL counts a conjunction of properties whose
                # columns are not held in 0.2-0.3 s, free text with a box in ~0.06; the words
                # first wanted first, ``MAX_WORDS`` of them (the rest: wanted again by SQL)
                for part in ([key for key in wanted if key[0] != "word"],
                             [key for key in wanted if key[0] == "word"][:MAX_WORDS]):
                    if part:
                        self._read(functools.partial(self._read_columns, keys=part))
        except Exception as exc:  # (a closed store, an interrupted read): SQL counts
            log.debug("index columns not read: %s", exc)
        finally:
            with self._lock:
                if self._builder is threading.current_thread():  # (ended by an error)
                    self._builder = None
                    self._wanted.clear()

    def _read_columns(self, conn: sqlite3.Connection, generation: int,
                      keys: list[tuple[Any, Any]]) -> None:
        import numpy as np

        with self._lock:
            current = self._generation == generation and self._rowids is not None
            rowids = self._rowids if current else None
            keys = [key for key in keys if not (current and (
                key[1] in self._words if key[0] == "word" else key in self._columns))]
        # read by SQLite, a few rows of long texts, rather than a Python tuple per row: the
        # GIL is free meanwhile (the requests' threads run), and at 1,000,000 items a column
        # takes about half the time (numbers, exact, come back as they are)
        if rowids is None:
            rowids = np.sort(_integers(conn.execute(
                "SELECT group_concat(rowid, ' ') FROM items").fetchone()[0]))
        read: dict[tuple[int, int], _Column | _Times] = {}
        words = {key[1]: _read_word(conn, key[1], rowids, self._closed) for key in keys
                 if key[0] == "word"}
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
            if (code, kind) == TIMES or code == "word":
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
                self._generation, self._rowids = generation, rowids
                self._columns, self._words = OrderedDict(), OrderedDict()
            self._columns.update(read)
            while len(self._columns) > _MAX_COLUMNS:
                self._columns.popitem(last=False)
            self._words.update(words)
            while len(self._words) > MAX_WORDS:
                self._words.popitem(last=False)
            for key in read:
                _touch(self._recent_columns, key, _MAX_COLUMNS)
            for word in words:
                _touch(self._recent_words, word, MAX_WORDS)
            held = list(self._recent_columns)
        if read:  # (words alone: the columns remembered stay as they were)
            self._remember(held)


def _touch(recent: OrderedDict[Any, None], key: Any, most: int) -> None:
    """``key`` used last in ``recent``, which keeps the ``most`` used last."""
    recent[key] = None
    recent.move_to_end(key)
    while len(recent) > most:
        recent.popitem(last=False)


def _read_word(conn: sqlite3.Connection, word: str, rowids: Any,
               closed: threading.Event) -> _Postings:
    """The items that have ``word``, from the FTS index, a slice of the rowids at a time (one
    statement each, whose list SQLite makes with the GIL free: "the" has 995,637 of
    1,000,000 items); stopped once ``closed`` is set."""
    import numpy as np

    has = np.zeros(len(rowids), dtype=bool)
    starts = rowids[::_SLICE]
    for i, low in enumerate(starts):
        if closed.is_set():
            raise InterruptedError("the index store closed")
        high = starts[i + 1] - 1 if i + 1 < len(starts) else rowids[-1]
        text = conn.execute("SELECT group_concat(rowid, ' ') FROM items_fts WHERE items_fts "
                            "MATCH ? AND rowid BETWEEN ? AND ?",
                            (f'"{word}"', int(low), int(high))).fetchone()[0]
        matches = _integers(text)
        at = np.searchsorted(rowids, matches)
        if len(at) and (at[-1] >= len(rowids) or not np.array_equal(rowids[at], matches)):
            raise ValueError(f"the FTS index lists items that are not for {word!r}")  # (SQL)
        has[at] = True
    return _Postings(np.packbits(has))


def _integers(text: str | None) -> Any:
    """The integers of SQLite's ``group_concat(x, ' ')`` (None: of no rows)."""
    import numpy as np

    return np.fromstring(text or "", dtype=np.int64, sep=" ")
