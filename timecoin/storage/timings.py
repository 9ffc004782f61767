"""Durations of storage operations and WAL checkpoints, for the node's metrics.

The writer thread times every operation it runs and every WAL checkpoint,
and adds them to fixed-bucket histograms here; the metrics collector, on the
reactor thread, copies them when ``/metrics`` is scraped. A lock held only
for a few integer additions or for the copy keeps the two consistent; the
reactor never waits on a database operation.

Operations are named from :data:`OPERATIONS`, one per method of
:class:`~timecoin.storage.store.Storage` that reaches the writer thread, so
the metric's label set is bounded.
"""

import threading
from bisect import bisect_left
from collections import namedtuple

#: Upper bounds (seconds) of the storage histograms' buckets.
STORAGE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                   0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

#: Every operation name the writer thread records.
OPERATIONS = (
    "open", "close", "journal_commit", "utxo_flush", "block_commit", "masternodes_save",
    "utxo_read", "tx_read", "journal_read", "address_read", "meta_read", "summary",
    "masternodes_read", "blocks_read", "backup", "run_db", "snapshot_write", "snapshot_read",
    "snapshot_install", "other",
)

#: One histogram's copy: ``buckets`` are cumulative counts, one per bound of
#: :data:`STORAGE_BUCKETS` then ``+Inf``.
HistogramSnapshot = namedtuple("HistogramSnapshot", "buckets sum")

#: What the collector reads: ``operations`` maps each name of
#: :data:`OPERATIONS` to its :data:`HistogramSnapshot`; ``checkpoints`` and
#: ``checkpoint_pages`` are totals; ``wal_pages`` is the WAL's size in pages
#: at the last checkpoint.
TimingSnapshot = namedtuple(
    "TimingSnapshot", "operations checkpoints checkpoint_pages checkpoint_seconds wal_pages")


class _Histogram:
    """Counts per bucket (not cumulative) and the sum of observations."""

    __slots__ = ("counts", "sum")

    def __init__(self):
        self.counts = [0] * (len(STORAGE_BUCKETS) + 1)
        self.sum = 0.0

    def observe(self, seconds):
        self.counts[bisect_left(STORAGE_BUCKETS, seconds)] += 1
        self.sum += seconds

    def snapshot(self):
        cumulative, running = [], 0
        for n in self.counts:
            running += n
            cumulative.append(running)
        return HistogramSnapshot(tuple(cumulative), self.sum)


#: SQLite's own checkpoint threshold (``wal_autocheckpoint``), in WAL pages.
CHECKPOINT_PAGES = 1000
#: Bounds (seconds) of the time between two checkpoints.
CHECKPOINT_INTERVAL_MIN = 1.0
CHECKPOINT_INTERVAL_MAX = 30.0


class CheckpointSchedule:
    """When the writer thread runs its next WAL checkpoint.

    SQLite checkpoints inside the commit that brings the WAL to 1000 pages;
    the WAL's size is not known between checkpoints here, so the schedule
    estimates it: after each checkpoint the WAL's pages over the time since
    the one before give a rate, and the next is due when that rate would
    have written :data:`CHECKPOINT_PAGES` more, but no sooner than
    ``least`` and no later than ``most`` seconds on (0 and 0: after every
    commit). Times are ``time.monotonic()`` readings given by the caller.
    """

    def __init__(self, now, least=CHECKPOINT_INTERVAL_MIN, most=CHECKPOINT_INTERVAL_MAX,
                 pages=CHECKPOINT_PAGES):
        self.least, self.most, self.pages = least, most, pages
        self.last = now
        self.next = now + least

    def due(self, now):
        return now >= self.next

    def ran(self, now, wal_pages):
        """A checkpoint ran at ``now`` and found ``wal_pages`` in the WAL."""
        elapsed = now - self.last
        rate = wal_pages / elapsed if elapsed > 0 else 0.0
        wait = self.pages / rate if rate > 0 else self.most
        self.last = now
        self.next = now + min(max(wait, self.least), self.most)


class StorageTimings:
    """The storage histograms and checkpoint counters (see the module docstring)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._operations = {name: _Histogram() for name in OPERATIONS}
        self._checkpoint = _Histogram()
        self._checkpoints = 0
        self._checkpoint_pages = 0
        self._wal_pages = 0

    def record(self, operation, seconds):
        """``operation`` (a name of :data:`OPERATIONS`) took ``seconds``."""
        with self._lock:
            self._operations[operation].observe(seconds)

    def checkpointed(self, pages, wal_pages, seconds):
        """A WAL checkpoint copied ``pages`` into the database in ``seconds``;
        the WAL held ``wal_pages``."""
        with self._lock:
            self._checkpoint.observe(seconds)
            self._checkpoints += 1
            self._checkpoint_pages += max(pages, 0)
            self._wal_pages = max(wal_pages, 0)

    def snapshot(self):
        """A consistent :data:`TimingSnapshot` of everything recorded so far."""
        with self._lock:
            return TimingSnapshot(
                {name: h.snapshot() for name, h in self._operations.items()},
                self._checkpoints, self._checkpoint_pages, self._checkpoint.snapshot(),
                self._wal_pages)
