"""Folding the committed finality journal into the UTXO tables, one batch at a time."""

from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from timecoin.interfaces import IUtxoFlusher


@implementer(IUtxoFlusher)
class UtxoFlusher:
    """Applies journal entries up to the last committed one to storage.

    One flush at a time: a flush asked for while one runs gets that one. On
    success the UTXO state unpins what storage now holds; a failure is kept
    in ``error`` (the journal keeps every change, the next flush retries).
    ``storage`` is an ``IStorage``, ``state`` an ``IUtxoState``, ``journal``
    an ``IJournal``, ``metrics`` an ``INodeMetrics``; durations are read on ``clock``.
    """

    log = Logger()

    def __init__(self, clock, storage, state, journal, metrics, applied_seq=0):
        self._clock = clock
        self._storage = storage
        self._state = state
        self._journal = journal
        self._metrics = metrics
        self._flushing = None
        self.applied_seq = applied_seq
        self.error = None

    def flush(self):
        if self._flushing is not None:
            return self._flushing
        target = self._journal.committed_seq
        if target <= self.applied_seq:
            return defer.succeed(self.applied_seq)
        started = self._clock.seconds()

        def done(applied):
            self.applied_seq = applied
            self._state.applied(applied)
            self.error = None
            self._metrics.flushed(self._clock.seconds() - started)
            return applied

        def failed(failure):
            self.error = failure.getErrorMessage()
            self.log.error("UTXO flush failed ({error}); the journal keeps every change",
                           error=self.error)
            return self.applied_seq

        def finished(result):
            self._flushing = None
            return result

        self._flushing = self._storage.apply_journal(target, self._state.summary_at(target))
        self._flushing.addCallbacks(done, failed).addBoth(finished)
        return self._flushing

    @defer.inlineCallbacks
    def finish(self):
        if self._flushing is not None:
            yield self._flushing
        result = yield self.flush()
        return result
