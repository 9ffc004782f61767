"""Group commit of the finality journal.

Records appended while a commit is on the writer thread wait and go together
in the next one, so commits cost one fsync per batch however high the rate,
and an idle node commits a lone record at once. A failed commit (a full disk,
say) keeps its records, in order, and is retried with a growing delay; nothing
is reported finalized until its record is committed.
"""

from twisted.internet.defer import Deferred
from twisted.logger import Logger

MAX_BATCH = 5000
RETRY_DELAYS = (0.1, 0.5, 1.0, 2.0, 5.0)


class JournalWriter:
    """Appends records to storage in group commits (see the module docstring)."""

    log = Logger()

    def __init__(self, clock, storage, on_commit=None):
        self._clock = clock
        self._storage = storage
        self._on_commit = on_commit
        self._queue = []  # (record, Deferred)
        self._drainers = []
        self._busy = False
        self._retry = None
        self._failures = 0
        self.committed_seq = 0
        self.last_error = None
        self.batches = 0

    def append(self, record, notify=True):
        """Queue ``record``; the Deferred fires with it once it is durable.

        With ``notify=False`` no Deferred is made (the ``on_commit`` callback
        reports the batch): the node's hot path.
        """
        d = Deferred() if notify else None
        self._queue.append((record, d))
        self._kick()
        return d

    @property
    def backlog(self):
        return len(self._queue)

    def _kick(self):
        if self._busy or self._retry is not None or not self._queue:
            return
        batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
        self._busy = True
        d = self._storage.append_journal([record for record, _ in batch])
        d.addCallbacks(self._committed, self._failed, callbackArgs=(batch,),
                       errbackArgs=(batch,))

    def _committed(self, _, batch):
        self._busy = False
        self._failures = 0
        self.last_error = None
        self.batches += 1
        self.committed_seq = max(self.committed_seq, batch[-1][0].seq)
        if self._on_commit is not None:
            self._on_commit([record for record, _ in batch])
        for record, d in batch:
            if d is not None:
                d.callback(record)
        self._kick()
        if not self._busy and not self._queue:
            drainers, self._drainers = self._drainers, []
            for d in drainers:
                d.callback(None)

    def _failed(self, failure, batch):
        self._busy = False
        self._queue[:0] = batch
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
        if not self._queue and not self._busy:
            d.callback(None)
        else:
            self._drainers.append(d)
        return d

    def stop(self):
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
