"""Group commit of the finality journal.

Records appended while a commit is on the writer thread wait and go together
in the next one, so commits cost one fsync per batch however high the rate,
and an idle node commits a lone record at once. A failed commit (a full disk,
say) keeps its records, in order, and is retried with a growing delay; nothing
is reported finalized until its record is committed.

The writer builds the records (:meth:`JournalWriter.record`: sequence number,
undo data, timestamps on its clock) and remembers the records being committed
and the last ``recent_max`` committed, so that lookups of a transaction
finalized lately need no storage read.

A committed block rides in the same queue (:meth:`JournalWriter.append_block`):
it is written alone, in order, by ``IStorage.save_block`` (the block row, its
reward transaction's record, the confirmations and the registry's rows in
one transaction), so the journal's sequence stays gap-free on disk. Sets
waiting when a block reaches the head of the queue commit first, alone.

Conflict sets this node is about to vote on (:meth:`JournalWriter.save_conflict_sets`)
gate its votes, so they go first: the next commit takes every queued set and
at most :data:`SETS_WITH_RECORDS` queued records (none if more are queued:
the records follow in the commit after, with any sets saved meanwhile, so
records are never passed over twice in a row), so a large batch of records
does not stand between a save and its commit. A finalization removes the
sets it decides in its own commit; sets are built only from pending
members, so a set is never written after the commit that decided it (see
doc/finality.md, "Durable votes").

The next commit is handed to the writer thread as soon as one completes,
before the completed one is reported (``on_commit`` and the Deferreds, in
commit order), so the thread commits while the reactor handles the
finalizations.
"""

from collections import OrderedDict, deque

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from zope.interface import implementer

from timecoin.interfaces import IJournal
from timecoin.storage.conflict_tables import ConflictSetBatch
from timecoin.storage.store import JournalRecord, encode_undo

MAX_BATCH = 5000
#: A commit that carries conflict sets takes the queued records only if they
#: are at most this many (a small batch costs no more than the sets' fsync).
SETS_WITH_RECORDS = 64
RETRY_DELAYS = (0.1, 0.5, 1.0, 2.0, 5.0)
#: How many committed records are kept in memory for lookups.
RECENT_FINALIZED = 20_000


class BlockWrite:
    """A committed block queued for ``save_block``: ``record`` is its reward
    transaction's journal record (or None), the rest ``save_block``'s arguments."""

    __slots__ = ("record", "block_row", "confirmed_txids", "masternode_rows", "active_set")

    def __init__(self, record, block_row, confirmed_txids, masternode_rows, active_set=None):
        self.record = record
        self.block_row = block_row
        self.confirmed_txids = tuple(confirmed_txids)
        self.masternode_rows = masternode_rows
        self.active_set = active_set


def _records(batch):
    """The journal records of a queued batch (a block's reward record included)."""
    out = []
    for item, _ in batch:
        record = item.record if isinstance(item, BlockWrite) else item
        if record is not None:
            out.append(record)
    return out


def _is_block(batch):
    return bool(batch) and isinstance(batch[0][0], BlockWrite)


@implementer(IJournal)
class JournalWriter:
    """Appends records to storage in group commits (see the module docstring)."""

    log = Logger()

    def __init__(self, clock, storage, on_commit=None, last_seq=0,
                 recent_max=RECENT_FINALIZED):
        self._clock = clock
        self._storage = storage
        self._on_commit = on_commit
        self._queue = []  # (record, Deferred)
        self._sets = ConflictSetBatch()  # conflict sets for the next commit
        self._sets_waiting = []  # Deferreds fired once those are durable
        self._drainers = []
        self._reports = deque()  # (batch, sets' Deferreds) committed, not yet reported
        self._reporting = False
        self._busy = False
        self._records_next = False  # the last commit passed over queued records
        self._retry = None
        self._failures = 0
        self._next_seq = last_seq + 1
        self._committing = {}  # txid -> record queued or on the writer thread
        self._recent = OrderedDict()  # txid -> record committed lately
        self._recent_max = recent_max
        self.committed_seq = last_seq
        self.last_error = None
        self.batches = 0

    def record(self, tx, spent, arrived_at):
        """The next record: ``tx`` finalized now, spending the ``spent`` entries."""
        seq, self._next_seq = self._next_seq, self._next_seq + 1
        now = self._clock.seconds()
        return JournalRecord(seq, tx.txid, tx.raw, encode_undo(spent), now,
                             round((now - arrived_at) * 1000.0, 3))

    def committing(self, txid):
        return self._committing.get(txid)

    def recent(self, txid):
        return self._recent.get(txid)

    def find(self, txid):
        return self._recent.get(txid) or self._committing.get(txid)

    def forget(self, txid):
        """``txid`` was unwound (a safety incident): :meth:`find` no longer has it."""
        self._recent.pop(txid, None)

    def append(self, record, notify=True):
        """Queue ``record``; the Deferred fires with it once it is durable.

        With ``notify=False`` no Deferred is made (the ``on_commit`` callback
        reports the batch): the node's hot path.
        """
        d = Deferred() if notify else None
        self._committing[record.txid] = record
        self._queue.append((record, d))
        self._kick()
        return d

    def append_block(self, record, block_row, confirmed_txids, masternode_rows,
                     active_set=None):
        """Queue a committed block (see :class:`BlockWrite`) behind the records
        queued so far, with the active set after it if it changed; the
        Deferred fires once it is durable."""
        d = Deferred()
        if record is not None:
            self._committing[record.txid] = record
        self._queue.append((BlockWrite(record, block_row, confirmed_txids, masternode_rows,
                                      active_set), d))
        self._kick()
        return d

    def save_conflict_sets(self, batch):
        """Queue a :class:`ConflictSetBatch` for the next commit; the Deferred
        fires once it is durable."""
        d = Deferred()
        self._sets.extend(batch)
        self._sets_waiting.append(d)
        self._kick()
        return d

    @property
    def backlog(self):
        return len(self._queue)

    def _kick(self):
        if self._busy or self._retry is not None or not (self._queue or self._sets_waiting):
            return
        if self._queue and isinstance(self._queue[0][0], BlockWrite) and not self._sets_waiting:
            self._busy = True
            batch, self._queue = self._queue[:1], self._queue[1:]
            block = batch[0][0]
            d = self._storage.save_block(block.block_row, _records(batch),
                                         block.confirmed_txids, block.masternode_rows,
                                         block.active_set)
            d.addCallbacks(self._committed, self._failed, callbackArgs=(batch,),
                           errbackArgs=(batch,))
            return
        sets, waiting = self._sets, self._sets_waiting
        self._sets, self._sets_waiting = ConflictSetBatch(), []
        # Records up to the first queued block (a block is written alone).
        take = next((i for i, (item, _) in enumerate(self._queue[:MAX_BATCH])
                     if isinstance(item, BlockWrite)), MAX_BATCH)
        if waiting and not self._records_next and len(self._queue) > SETS_WITH_RECORDS:
            take = 0  # votes wait for these: not behind a large batch of records
        # Records passed over once go in the next commit (with any sets saved
        # meanwhile): a steady stream of saves cannot starve them.
        self._records_next = take == 0 and bool(self._queue)
        batch, self._queue = self._queue[:take], self._queue[take:]
        self._busy = True
        records = [record for record, _ in batch]
        if waiting:
            d = self._storage.append_journal(records, sets)
        else:
            d = self._storage.append_journal(records)
        d.addCallbacks(self._committed, self._failed, callbackArgs=(batch, waiting),
                       errbackArgs=(batch, sets, waiting))

    def _committed(self, _, batch, sets_waiting=()):
        self._busy = False
        self._failures = 0
        self.last_error = None
        self.batches += 1
        records = _records(batch)
        if records:
            self.committed_seq = max(self.committed_seq, records[-1].seq)
        for record in records:
            self._committing.pop(record.txid, None)
            self._recent[record.txid] = record
        while len(self._recent) > self._recent_max:
            self._recent.popitem(last=False)
        self._reports.append((batch, sets_waiting))
        self._kick()  # the writer thread goes on while this commit is reported
        self._report_committed()

    def _report_committed(self):
        # In commit order, also when a commit completes within _kick (storage
        # on the calling thread): the outermost call reports every one.
        if self._reporting:
            return
        self._reporting = True
        try:
            while self._reports:
                batch, sets_waiting = self._reports.popleft()
                for d in sets_waiting:  # the votes waiting for these leave first
                    d.callback(None)
                if self._on_commit is not None and not _is_block(batch):
                    self._on_commit([record for record, _ in batch])
                for item, d in batch:
                    if d is not None:
                        d.callback(item.record if isinstance(item, BlockWrite) else item)
        finally:
            self._reporting = False
        if self._idle():
            drainers, self._drainers = self._drainers, []
            for d in drainers:
                d.callback(None)

    def _idle(self):
        return not (self._busy or self._queue or self._sets_waiting or self._reports)

    def _failed(self, failure, batch, sets=None, sets_waiting=()):
        self._busy = False
        self._queue[:0] = batch
        if sets_waiting and sets is not None:  # kept, ahead of what was queued since
            sets.extend(self._sets)
            self._sets, self._sets_waiting = sets, list(sets_waiting) + self._sets_waiting
        delay = RETRY_DELAYS[min(self._failures, len(RETRY_DELAYS) - 1)]
        self._failures += 1
        self.last_error = failure.getErrorMessage()
        self.log.error(
            "finality journal commit failed ({error}); {n} records kept, retrying in {delay}s",
            error=self.last_error, n=len(self._queue), delay=delay,
        )
        self._retry = self._clock.callLater(delay, self._retry_now)

    def _retry_now(self):
        self._retry = None
        self._kick()

    def drain(self):
        """A Deferred that fires once everything queued so far is committed."""
        d = Deferred()
        if self._idle():
            d.callback(None)
        else:
            self._drainers.append(d)
        return d

    def stop(self):
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
