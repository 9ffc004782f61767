"""Fake and synchronous components for tests and benchmarks that drive a node in-process."""

from twisted.internet import defer
from zope.interface import implementer

from timecoin.interfaces import IFinality
from timecoin.storage.store import Storage


class SyncStorage(Storage):
    """The real storage, run on the calling thread: every Deferred has fired on return."""

    def _run(self, fn, *args):
        return defer.maybeDeferred(fn, *args)

    def close(self):
        self._close_now()
        return defer.succeed(None)


@implementer(IFinality)
class ManualFinality:
    """Finality decided by the test: ``decide(txid, accepted)``."""

    def __init__(self):
        self.started = {}
        self._listeners = []

    def start(self, tx):
        self.started[tx.txid] = tx

    def cancel(self, txid):
        self.started.pop(txid, None)

    def add_listener(self, callback):
        self._listeners.append(callback)

    def in_flight(self):
        return len(self.started)

    def decide(self, txid, accepted, reason="test"):
        self.started.pop(txid, None)
        for listener in self._listeners:
            listener(txid, accepted, reason)
