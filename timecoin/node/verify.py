"""Signature verification: inline, or in batches on worker processes.

Ed25519 verification is most of a transaction's validation cost. Threads do
not help much in CPython: a worker thread needs the GIL back after every
verify, and the reactor thread, busy with the rest of the pipeline, holds it.
So a daemon verifies on a few child processes (``[validation]
signature_workers``, :mod:`timecoin.node.verify_worker`) while the reactor thread
decodes, checks the UTXO state and admits. What arrives in one reactor turn
travels together: one pipe write per chunk, not per transaction. Results are
reported in arrival order, so "first seen" among conflicting transactions
means first submitted, whichever worker answered first.

A worker that dies has its chunks verified inline and is started again; if
more than ``MAX_RESTARTS`` end within ``RESTART_WINDOW_S``, they are not
replaced, and once none is left the node verifies inline and says so in its
log.
"""

import errno
import os
import resource
import sys
from collections import deque

from twisted.internet import defer, protocol
from twisted.logger import Logger
from zope.interface import implementer

from timecoin.interfaces import ISignatureVerifier
from timecoin.ledger.tx import TxRejected, bad_signature, first_bad_signature
from timecoin.node.verify_worker import (
    MALFORMED,
    MAX_CHUNK_TXS,
    OK,
    WORD,
    FrameError,
    decode_answer,
    encode_request,
)

#: The longest answer a worker can give: one word per transaction.
MAX_ANSWER = 4 * MAX_CHUNK_TXS
#: Seconds stopping workers have to answer and exit before they are killed.
STOP_GRACE_S = 5.0


class WorkerStartError(Exception):
    """A signature worker process cannot be started; the message says why in one line."""


def _spawn_failure(error, executable):
    """The one line of a failed worker spawn; out of descriptors, it names the
    open-file limit."""
    if error.errno not in (errno.EMFILE, errno.ENFILE, errno.EBADF):
        return WorkerStartError(f"cannot start the signature workers ({executable}): "
                                f"{error.strerror or error}")
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = "unlimited" if soft == resource.RLIM_INFINITY else str(soft)
    return WorkerStartError(
        f"cannot start the signature workers: {error.strerror or error} (the open-file "
        f"limit, ulimit -n, is {limit}: raise it, or set [validation] signature_workers "
        "= 0 to verify on the reactor thread)")


def verify_inline(txs):
    """For each transaction, None if its signatures verify, else its ``TxRejected``."""
    results = []
    for tx in txs:
        n = first_bad_signature(tx)
        results.append(None if n is None else bad_signature(n))
    return results


@implementer(ISignatureVerifier)
class InlineVerifier:
    """Verifies on the calling thread (``signature_workers = 0``, tests, tools)."""

    workers = 0
    restarts = 0

    def start(self):
        pass

    def verify(self, tx):
        n = first_bad_signature(tx)
        if n is not None:
            return defer.fail(bad_signature(n))
        return defer.succeed(None)

    def pending(self):
        return 0

    def stop(self):
        return defer.succeed(None)

    def abort(self):
        pass


class _Chunk:
    """Transactions verified together by one worker, with their Deferreds."""

    __slots__ = ("txs", "deferreds", "results")

    def __init__(self, items):
        self.txs = [tx for tx, _ in items]
        self.deferreds = [d for _, d in items]
        self.results = None  # one None or TxRejected per transaction, once answered

    def answered(self, words):
        results = []
        for word in words:
            if word == OK:
                results.append(None)
            elif word == MALFORMED:
                results.append(TxRejected("malformed", "the verifier could not decode it"))
            else:
                results.append(bad_signature(word))
        self.results = results


class WorkerProtocol(protocol.ProcessProtocol):
    """One worker process: sends chunks down its stdin, reads answers in order."""

    log = Logger()

    def __init__(self, owner):
        self.owner = owner
        self.chunks = deque()  # sent, not yet answered
        self.outstanding = 0  # transactions in those chunks
        self.ended = defer.Deferred()
        self.ready = defer.Deferred()  # fires once the worker has said so
        self.alive = False
        self._buffer = b""

    def connectionMade(self):
        self.alive = True

    def send(self, chunk):
        self.chunks.append(chunk)
        self.outstanding += len(chunk.txs)
        body = encode_request([tx.raw for tx in chunk.txs])
        self.transport.write(WORD.pack(len(body)) + body)

    def outReceived(self, data):
        self._buffer += data
        while len(self._buffer) >= 4:
            (n,) = WORD.unpack_from(self._buffer)
            if n > MAX_ANSWER:
                self._broken(f"an answer of {n} bytes")
                return
            if len(self._buffer) < 4 + n:
                return
            body, self._buffer = self._buffer[4:4 + n], self._buffer[4 + n:]
            if not self.ready.called:
                if body:
                    self._broken("it did not say ready first")
                    return
                self.ready.callback(None)
                continue
            if not self.chunks:
                self._broken("an answer nobody asked for")
                return
            chunk = self.chunks[0]
            try:
                words = decode_answer(body, len(chunk.txs))
            except FrameError as e:
                self._broken(str(e))
                return
            self.chunks.popleft()
            self.outstanding -= len(chunk.txs)
            chunk.answered(words)
            self.owner.answered_by_workers += len(words)
            self.owner.chunk_answered()

    def errReceived(self, data):
        for line in data.decode("utf-8", "replace").splitlines():
            self.log.warn("signature worker: {line}", line=line)

    def _broken(self, why):
        self.log.error("signature worker broke the protocol ({why}); stopping it", why=why)
        self.transport.signalProcess("KILL")

    def processEnded(self, reason):
        self.alive = False
        if not self.ready.called:
            self.ready.callback(None)
        self.owner.worker_ended(self, reason)
        self.ended.callback(None)


@implementer(ISignatureVerifier)
class ProcessVerifier:
    """Verifies signatures on ``workers`` child processes, a chunk per pipe write.

    What arrives in one reactor turn is split into at most one chunk per
    worker (each of ``MIN_CHUNK`` to ``MAX_CHUNK`` transactions) and each
    chunk goes to the worker with the least outstanding work.
    """

    MIN_CHUNK = 16
    MAX_CHUNK = 64
    #: Workers that end unasked are replaced, unless more than MAX_RESTARTS
    #: ended within RESTART_WINDOW_S (a worker that cannot run at all).
    MAX_RESTARTS = 3
    RESTART_WINDOW_S = 60.0
    log = Logger()

    def __init__(self, reactor, workers, executable=None):
        if workers < 1:
            raise ValueError("a process verifier needs at least one worker")
        self.workers = workers
        self._reactor = reactor
        self._executable = executable or sys.executable
        self._procs = []
        self._waiting = []  # (tx, Deferred) not yet sent
        self._dispatch_call = None
        self._in_order = deque()  # chunks sent or verified, in arrival order
        self._idle = []  # Deferreds of stop(), fired once nothing is left
        self._stopping = False
        self.restarts = 0
        self._deaths = []  # when workers ended unasked, within the restart window
        self.answered_by_workers = 0  # transactions, since start

    def start(self):
        """Start the workers. (A daemon that fails during start-up leaves none
        behind: each ends when its input closes with the node's process.)"""
        self.log.info("verifying signatures on {n} worker processes", n=self.workers)
        while not self._stopping and len(self._procs) < self.workers:
            self._spawn()

    def _spawn(self):
        """Start one worker, or raise :class:`WorkerStartError`."""
        proc = WorkerProtocol(self)
        try:
            self._reactor.spawnProcess(proc, self._executable,
                                       [self._executable, "-m", "timecoin.node.verify_worker"],
                                       env=dict(os.environ))
        except OSError as e:
            raise _spawn_failure(e, self._executable) from None
        self._procs.append(proc)

    def ready(self):
        """Fires once every worker started so far has said it is ready (or ended)."""
        return defer.DeferredList([p.ready for p in self._procs]).addCallback(lambda _: None)

    def verify(self, tx):
        if self._stopping:
            return defer.fail(TxRejected("shutting-down", "the node is stopping"))
        d = defer.Deferred()
        self._waiting.append((tx, d))
        if len(self._waiting) >= self.MAX_CHUNK:
            self._dispatch()
        elif self._dispatch_call is None:
            self._dispatch_call = self._reactor.callLater(0, self._dispatch)
        return d

    def pending(self):
        return len(self._waiting) + sum(len(c.txs) for c in self._in_order)

    def _dispatch(self):
        if self._dispatch_call is not None and self._dispatch_call.active():
            self._dispatch_call.cancel()
        self._dispatch_call = None
        batch, self._waiting = self._waiting, []
        alive = [p for p in self._procs if p.alive]
        size = -(-len(batch) // max(1, len(alive)))
        size = min(self.MAX_CHUNK, max(self.MIN_CHUNK, size))
        for start in range(0, len(batch), size):
            chunk = _Chunk(batch[start:start + size])
            self._in_order.append(chunk)
            if alive:
                min(alive, key=lambda p: p.outstanding).send(chunk)
            else:
                chunk.results = verify_inline(chunk.txs)
        self.chunk_answered()

    def chunk_answered(self):
        """Report answered chunks, in arrival order: one waits for those before it."""
        while self._in_order and self._in_order[0].results is not None:
            done = self._in_order.popleft()
            for d, error in zip(done.deferreds, done.results, strict=True):
                if error is None:
                    d.callback(None)
                else:
                    d.errback(error)
        self._maybe_idle()

    def worker_ended(self, proc, reason):
        self._procs.remove(proc)
        for chunk in proc.chunks:
            chunk.results = verify_inline(chunk.txs)
        proc.chunks.clear()
        if not self._stopping:
            self.restarts += 1
            why = reason.getErrorMessage()
            now = self._reactor.seconds()
            self._deaths = [t for t in self._deaths if t > now - self.RESTART_WINDOW_S]
            self._deaths.append(now)
            if len(self._deaths) <= self.MAX_RESTARTS:
                self.log.error("signature worker ended ({why}); starting another", why=why)
                try:
                    self._spawn()
                except WorkerStartError as e:
                    self.log.error("{problem}; {left} left", problem=str(e),
                                   left=len(self._procs))
            elif self._procs:
                self.log.error("signature worker ended ({why}); not replaced: {n} ended "
                               "within {s:.0f} s, {left} left", why=why, n=len(self._deaths),
                               s=self.RESTART_WINDOW_S, left=len(self._procs))
            else:
                self.log.error("signature workers keep ending ({why}); verifying on the "
                               "reactor thread from now on", why=why)
        self.chunk_answered()

    def _maybe_idle(self):
        if self._in_order or self._waiting or not self._idle:
            return
        idle, self._idle = self._idle, []
        for proc in self._procs:
            if proc.alive:
                proc.transport.closeStdin()  # it exits once its input ends
        done = defer.DeferredList([proc.ended for proc in self._procs])
        for d in idle:
            done.addCallback(lambda _, d=d: d.callback(None))

    def stop(self):
        """Report what was handed in, then end the workers. Later calls of
        :meth:`verify` fail with ``shutting-down``.

        Workers still running ``STOP_GRACE_S`` after this call (not answering,
        or not exiting) are killed; their chunks are then verified on the
        reactor thread, so stopping always ends.
        """
        self._stopping = True
        if self._waiting:
            self._dispatch()
        d = defer.Deferred()
        self._idle.append(d)
        timer = self._reactor.callLater(STOP_GRACE_S, self._kill_all)
        d.addBoth(lambda r: (timer.active() and timer.cancel(), r)[1])
        self._maybe_idle()
        return d

    def abort(self):
        self._stopping = True
        for proc in self._procs:
            if proc.alive:
                proc.transport.signalProcess("KILL")

    def _kill_all(self):
        for proc in self._procs:
            if proc.alive:
                self.log.warn("signature worker still running at stop; killing it")
                proc.transport.signalProcess("KILL")
