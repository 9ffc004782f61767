"""The start-up check of a large database, off the reactor and writer threads.

A set of more than ``Storage.inline_check_max`` outputs would delay start-up
by its check (a MuHash element per output), so the node starts at once and
:class:`StorageCheck` runs the checks of :mod:`timecoin.storage.integrity` on
a thread of its own, on a second, read-only connection: in WAL mode it reads
one consistent snapshot while the writer thread goes on. Progress goes to the
log; until the check is done the node's ``/health`` says "verifying"
(degraded), and damage found is reported in one line to ``on_damage``.
"""

import sqlite3
from urllib.parse import quote

from twisted.internet import defer
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer

from timecoin.interfaces import IStorageCheck
from timecoin.storage import integrity


@implementer(IStorageCheck)
class StorageCheck:
    """The check of one database file; ``needed=False`` if open already did it."""

    log = Logger()

    def __init__(self, reactor, path, needed=True, expected=None):
        self._reactor = reactor
        self._path = path
        self._needed = needed
        self._pool = None
        self._cancelled = False
        self._running = None
        self.state = "verifying" if needed else "ok"
        self.progress = (0, expected) if needed else (expected, expected)
        self.problem = None

    def start(self, on_damage):
        if not self._needed or self._running is not None:
            return
        self.log.info("checking the UTXO set and the journal in the background "
                      "({n} outputs); /health says verifying until done",
                      n=self.progress[1])
        self._pool = ThreadPool(minthreads=1, maxthreads=1, name="timecoin-check")
        self._pool.start()
        self._running = deferToThreadPool(self._reactor, self._pool, self._check)
        self._running.addCallbacks(self._passed, self._failed, errbackArgs=(on_damage,))

    def _check(self):
        uri = f"file:{quote(self._path)}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        try:
            integrity.integrity_check(conn)
            integrity.check_utxo_set(conn, self._progress_from_thread, self._is_cancelled)
            integrity.check_journal(conn, cancelled=self._is_cancelled)
        finally:
            conn.close()

    def _is_cancelled(self):
        return self._cancelled

    def _progress_from_thread(self, done, expected):
        self._reactor.callFromThread(self._report, done, expected)

    def _report(self, done, expected):
        self.progress = (done, expected)
        self.log.info("checked {done} of {expected} outputs", done=done, expected=expected)

    def _passed(self, _):
        self.state = "ok"
        self.progress = (self.progress[1], self.progress[1])
        self.log.info("storage check done: the UTXO tables and the journal agree")

    def _failed(self, failure, on_damage):
        if failure.check(integrity.Cancelled):
            return None
        if failure.check(integrity.DamageFound, sqlite3.DatabaseError):
            self.problem = f"database {self._path} is damaged: {failure.getErrorMessage()}"
        else:
            self.problem = f"database {self._path} could not be checked: " \
                           f"{failure.getErrorMessage()}"
        self.state = "damaged"
        self.log.critical("{problem}", problem=self.problem)
        on_damage(self.problem)
        return None

    def stop_now(self):
        self._cancelled = True  # a check under way ends at its next step
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.stop()

    def stop(self):
        self._cancelled = True
        running, pool = self._running, self._pool
        if pool is None:
            return defer.succeed(None)
        self._pool = None
        d = running if running is not None and not running.called else defer.succeed(None)
        return d.addBoth(lambda _: pool.stop())
