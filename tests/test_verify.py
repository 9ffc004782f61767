"""Signature verification: inline, the worker's wire format, and worker processes."""

import io
import os
import signal

from twisted.internet import defer, reactor
from twisted.internet.error import ProcessTerminated
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from tests.support import sync_node, transfer
from timecoin.interfaces import ISignatureVerifier
from timecoin.ledger.keys import PrivateKey
from timecoin.ledger.networks import DEVNET
from timecoin.ledger.tx import OutPoint, Transaction, TxIn, TxRejected, sign_transfer
from timecoin.node.verify import STOP_GRACE_S, InlineVerifier, ProcessVerifier, verify_inline
from timecoin.node.verify_worker import (
    MALFORMED,
    OK,
    WORD,
    FrameError,
    check_request,
    decode_answer,
    decode_request,
    encode_request,
    serve,
)
from timecoin.testing.waiting import wait_until

KEY = PrivateKey.devnet(0)


def signed(i, n_inputs=1):
    ops = [OutPoint(bytes([i % 256, i // 256]) + bytes(30), v) for v in range(n_inputs)]
    return sign_transfer(KEY, ops, [(1000 + i, KEY.key_hash)], DEVNET.network_id)


def forged(tx, bad_input):
    """``tx`` with input ``bad_input``'s signature flipped in one bit."""
    inputs = list(tx.inputs)
    sig = bytearray(inputs[bad_input].signature)
    sig[5] ^= 1
    inputs[bad_input] = inputs[bad_input]._replace(signature=bytes(sig))
    return Transaction(tuple(inputs), tx.outputs, tx.network_id)


def outcome(d):
    """``None`` or the rejection code of an already fired Deferred."""
    results = []
    d.addCallbacks(results.append, lambda f: results.append(f.trap(TxRejected) and f.value))
    (result,) = results
    return None if result is None else (result.code, result.message)


class InlineVerifierTests(unittest.TestCase):
    def test_provides_the_interface(self):
        verifyObject(ISignatureVerifier, InlineVerifier())
        verifyObject(ISignatureVerifier, ProcessVerifier(Clock(), 1))

    def test_good_and_bad_signatures(self):
        verifier = InlineVerifier()
        self.assertIsNone(outcome(verifier.verify(signed(1))))
        self.assertEqual(outcome(verifier.verify(forged(signed(2, 3), 2))),
                         ("bad-signature", "input 2 signature does not verify"))

    def test_a_process_verifier_needs_a_worker(self):
        self.assertRaises(ValueError, ProcessVerifier, Clock(), 0)


class WorkerFormatTests(unittest.TestCase):
    def test_request_round_trip_and_bounds(self):
        raws = [signed(i).raw for i in range(3)] + [b""]
        self.assertEqual(decode_request(encode_request(raws)), raws)
        self.assertRaises(FrameError, decode_request, encode_request(raws)[:-1] + b"\0\0")
        self.assertRaises(FrameError, decode_request, WORD.pack(10**9))
        self.assertRaises(FrameError, decode_request, b"\0\0")

    def test_answers_say_ok_malformed_or_the_first_bad_input(self):
        raws = [signed(1).raw, b"garbage", forged(signed(2, 4), 1).raw]
        words = decode_answer(check_request(encode_request(raws)), 3)
        self.assertEqual(words, [OK, MALFORMED, 1])
        self.assertRaises(FrameError, decode_answer, WORD.pack(OK), 2)

    def test_serve_says_ready_then_answers_until_its_input_closes(self):
        request = encode_request([signed(1).raw, forged(signed(3), 0).raw])
        out = io.BytesIO()
        status = serve(io.BytesIO(WORD.pack(len(request)) + request), out)
        self.assertEqual(status, 0)
        data = out.getvalue()
        self.assertEqual(data[:8], WORD.pack(0) + WORD.pack(8))
        self.assertEqual(decode_answer(data[8:], 2), [OK, 0])

    def test_serve_stops_on_a_broken_request(self):
        cases = [(WORD.pack(100) + b"short", ""), (WORD.pack(2**31), "exceeds"),
                 (b"\0\0", ""), (WORD.pack(3) + b"\0\0\0", "bad request: truncated length")]
        for stdin, why in cases:
            stderr = io.StringIO()
            self.assertEqual(serve(io.BytesIO(stdin), io.BytesIO(), stderr), 1, stdin)
            self.assertIn(why, stderr.getvalue())


class ProcessVerifierTests(unittest.TestCase):
    """Real worker processes on the running reactor."""

    timeout = 60

    @defer.inlineCallbacks
    def start(self, workers=2):
        verifier = ProcessVerifier(reactor, workers)
        verifier.start()
        self.addCleanup(verifier.stop)
        yield verifier.ready()
        self.assertEqual([p.alive for p in verifier._procs], [True] * workers)
        return verifier

    @defer.inlineCallbacks
    def test_results_come_back_in_arrival_order(self):
        verifier = yield self.start()
        txs = [signed(i) if i % 7 else forged(signed(i, 2), 1) for i in range(300)]
        order = []
        ds = []
        for i, tx in enumerate(txs):
            d = verifier.verify(tx)
            d.addBoth(lambda r, i=i: (order.append(i), r)[1])
            ds.append(d.addCallbacks(lambda _: None, lambda f: f.trap(TxRejected) and
                                     f.value.message))
        self.assertGreater(verifier.pending(), 0)
        results = yield defer.gatherResults(ds)
        self.assertEqual(order, list(range(300)))
        expected = [None if i % 7 else "input 1 signature does not verify" for i in range(300)]
        self.assertEqual(results, expected)
        self.assertEqual(verifier.pending(), 0)
        self.assertEqual(verifier.restarts, 0)
        self.assertEqual(verifier.answered_by_workers, 300)

    @defer.inlineCallbacks
    def test_a_dead_worker_is_replaced_and_loses_nothing(self):
        verifier = yield self.start(workers=1)
        (worker,) = verifier._procs
        txs = [signed(i) for i in range(100)] + [forged(signed(100), 0)]
        ds = [verifier.verify(tx) for tx in txs]
        verifier._dispatch()
        worker.transport.signalProcess("KILL")
        results = yield defer.DeferredList(ds, consumeErrors=True)
        self.assertTrue(all(ok for ok, _ in results[:100]))
        self.assertEqual(results[100][1].value.code, "bad-signature")
        self.assertEqual(verifier.restarts, 1)
        self.assertLess(verifier.answered_by_workers, 101)
        yield verifier.ready()
        self.assertEqual(len(verifier._procs), 1)
        self.assertIsNone((yield verifier.verify(signed(200))))

    @defer.inlineCallbacks
    def test_workers_ignore_sigint_and_sigterm(self):
        # A service manager signals the node's whole process group: the node
        # stops its workers itself, in order.
        verifier = yield self.start(workers=1)
        (worker,) = verifier._procs
        for sig in (signal.SIGINT, signal.SIGTERM):
            os.kill(worker.transport.pid, sig)
        self.assertIsNone((yield verifier.verify(signed(1))))
        self.assertEqual(verifier.answered_by_workers, 1)
        self.assertEqual(verifier.restarts, 0)

    @defer.inlineCallbacks
    def test_stop_reports_what_was_handed_in_then_refuses(self):
        verifier = yield self.start()
        ds = [verifier.verify(signed(i)) for i in range(50)]
        yield verifier.stop()
        self.assertTrue(all(d.called for d in ds))
        self.assertEqual(verifier._procs, [])
        failure = yield self.assertFailure(verifier.verify(signed(1)), TxRejected)
        self.assertEqual(failure.code, "shutting-down")

    @defer.inlineCallbacks
    def test_workers_that_cannot_start_leave_verification_inline(self):
        verifier = ProcessVerifier(reactor, 2, executable="/bin/false")
        verifier.start()
        self.addCleanup(verifier.stop)
        yield verifier.ready()
        yield wait_until(reactor, lambda: not verifier._procs)
        self.assertEqual(verifier.restarts, 2 + ProcessVerifier.MAX_RESTARTS)
        self.assertIsNone((yield verifier.verify(signed(1))))
        failure = yield self.assertFailure(verifier.verify(forged(signed(2), 0)), TxRejected)
        self.assertEqual(failure.code, "bad-signature")
        self.assertEqual(verifier.answered_by_workers, 0)
        self.flushLoggedErrors()

    def test_a_worker_that_never_answers_is_killed_at_stop(self):
        clock, spawned = Clock(), []
        verifier = ProcessVerifier(ReactorSpawning(clock, spawned), 1)
        verifier.start()
        (proc,) = spawned
        d = verifier.verify(signed(1))
        stopped = verifier.stop()
        self.assertNoResult(stopped)
        clock.advance(STOP_GRACE_S)
        self.assertEqual(proc.transport.signals, ["KILL"])
        proc.processEnded(Failure(ProcessTerminated(signal=9)))
        self.assertIsNone(self.successResultOf(d))
        self.successResultOf(stopped)
        self.flushLoggedErrors()

    def test_a_worker_breaking_the_protocol_is_killed_and_loses_nothing(self):
        cases = {
            "an answer before saying ready": (b"", WORD.pack(4) + WORD.pack(OK)),
            "an answer nobody asked for": (WORD.pack(0), WORD.pack(4) + WORD.pack(OK)),
            "too few words": (WORD.pack(0), WORD.pack(0)),
            "an answer longer than any": (WORD.pack(0), WORD.pack(2**31)),
        }
        for name, (first, garbage) in cases.items():
            clock, spawned = Clock(), []
            verifier = ProcessVerifier(ReactorSpawning(clock, spawned), 1)
            verifier.start()
            (proc,) = spawned
            proc.outReceived(first)
            asked = name != "an answer nobody asked for"
            d = verifier.verify(forged(signed(1), 0)) if asked else None
            clock.advance(0)
            proc.outReceived(garbage)
            self.assertEqual(proc.transport.signals, ["KILL"], name)
            proc.processEnded(Failure(ProcessTerminated(signal=9)))
            if asked:  # verified on the reactor thread instead
                self.assertEqual(self.failureResultOf(d, TxRejected).value.code,
                                 "bad-signature", name)
        self.flushLoggedErrors()

    def test_workers_are_replaced_unless_they_keep_ending(self):
        clock, spawned = Clock(), []
        verifier = ProcessVerifier(ReactorSpawning(clock, spawned), 1)
        verifier.start()

        def end_newest():
            spawned[-1].processEnded(Failure(ProcessTerminated(signal=9)))

        for _ in range(3):  # now and then: always replaced
            clock.advance(ProcessVerifier.RESTART_WINDOW_S)
            end_newest()
        self.assertEqual((len(spawned), verifier.restarts), (4, 3))
        for _ in range(3):  # three more within the window: the third is not replaced
            clock.advance(1)
            end_newest()
        self.assertEqual((len(spawned), verifier.restarts), (6, 6))
        self.assertEqual(verifier._procs, [])
        d = verifier.verify(forged(signed(1), 0))
        clock.advance(0)
        self.assertEqual(self.failureResultOf(d, TxRejected).value.code, "bad-signature")
        self.flushLoggedErrors()

    def test_without_workers_it_verifies_inline(self):
        results = verify_inline([signed(1), forged(signed(2), 0)])
        self.assertIsNone(results[0])
        self.assertEqual(results[1].code, "bad-signature")


class FakeProcessTransport:
    """What a worker's transport records: writes, signals, a closed stdin."""

    def __init__(self):
        self.written = []
        self.signals = []
        self.stdin_closed = False

    def write(self, data):
        self.written.append(data)

    def signalProcess(self, sig):
        self.signals.append(sig)

    def closeStdin(self):
        self.stdin_closed = True


class ReactorSpawning:
    """A Clock that 'spawns' a worker by connecting it to a fake transport."""

    def __init__(self, clock, spawned):
        self._clock = clock
        self.spawned = spawned

    def __getattr__(self, name):
        return getattr(self._clock, name)

    def spawnProcess(self, proto, executable, args, env=None):
        proto.transport = FakeProcessTransport()
        proto.connectionMade()
        self.spawned.append(proto)


class HeldVerifier(InlineVerifier):
    """Verifies when the test says so: ``release()``."""

    def __init__(self):
        self.held = []

    def verify(self, tx):
        d = defer.Deferred()
        self.held.append((tx, d))
        return d

    def pending(self):
        return len(self.held)

    def release(self):
        held, self.held = self.held, []
        for tx, d in held:
            InlineVerifier.verify(self, tx).chainDeferred(d)


class NodeWithSlowVerifierTests(unittest.TestCase):
    """The node while a transaction's signatures are being verified."""

    def setUp(self):
        self.clock = Clock()
        self.node = sync_node(self, self.clock)
        self.node.verifier = HeldVerifier()
        self.key = PrivateKey.devnet(0)
        genesis = self.node.genesis.txs[0]
        self.op = OutPoint(genesis.txid, 0)
        self.amount = genesis.outputs[0].amount

    def spend(self, to):
        return transfer(self.key, [self.op], [(10**8, to)], total=self.amount)

    def test_the_same_transaction_while_verifying_is_already_known(self):
        tx = self.spend(PrivateKey.devnet(1).key_hash)
        first = self.node.submit(tx)
        self.assertTrue(self.node.is_validating(tx.txid))
        again = self.failureResultOf(self.node.submit(tx), TxRejected)
        self.assertEqual(again.value.code, "already-known")
        self.node.verifier.release()
        self.assertEqual(self.successResultOf(first), tx.txid)
        self.assertFalse(self.node.is_validating(tx.txid))

    def test_waiting_on_a_transaction_being_verified(self):
        self.node.startService()
        self.addCleanup(self.node.stopService)
        lookups = []
        real = self.node.storage.get_transaction
        self.node.storage.get_transaction = lambda txid: (lookups.append(txid), real(txid))[1]
        tx = self.spend(PrivateKey.devnet(1).key_hash)
        self.node.submit(tx)
        waiting = self.node.queries.wait_for_transaction(tx.txid, 10)
        self.assertEqual(lookups, [])  # known to be validating: no storage lookup
        self.assertNoResult(waiting)
        self.node.verifier.release()
        self.clock.advance(0.2)  # the lone masternode decides; the journal commits
        self.assertEqual(self.successResultOf(waiting)["status"], "finalized")

    def test_a_transaction_refused_after_verifying_wakes_its_waiters(self):
        tx = forged(self.spend(PrivateKey.devnet(1).key_hash), 0)
        self.node.submit(tx).addErrback(lambda f: None)
        waiting = self.node.queries.wait_for_transaction(tx.txid, 10)
        self.node.verifier.release()
        status = self.successResultOf(waiting)
        self.assertEqual((status["status"], status["reason"]),
                         ("rejected", "bad-signature: input 0 signature does not verify"))

    def test_a_second_copy_refused_does_not_wake_the_waiters(self):
        tx = self.spend(PrivateKey.devnet(1).key_hash)
        self.node.submit(tx)
        waiting = self.node.queries.wait_for_transaction(tx.txid, 10)
        self.failureResultOf(self.node.submit(tx), TxRejected)
        self.assertNoResult(waiting)

    def test_a_bad_signature_found_later_is_refused_and_remembered(self):
        tx = forged(self.spend(PrivateKey.devnet(1).key_hash), 0)
        d = self.node.submit(tx)
        self.assertNoResult(d)
        self.node.verifier.release()
        self.assertEqual(self.failureResultOf(d, TxRejected).value.code, "bad-signature")
        self.assertIsNotNone(self.node.mempool.rejection(tx.txid))
        self.assertFalse(self.node.is_validating(tx.txid))

    def test_the_first_verified_of_a_double_spend_takes_the_locks(self):
        a = self.spend(PrivateKey.devnet(1).key_hash)
        b = self.spend(PrivateKey.devnet(2).key_hash)
        da, db = self.node.submit(a), self.node.submit(b)
        self.node.verifier.release()
        self.assertEqual(self.successResultOf(da), a.txid)
        self.assertEqual(self.node.state.lock_holder(self.op), a.txid)
        self.assertEqual(self.failureResultOf(db, TxRejected).value.code, "input-locked")
        self.assertIn(a.txid, self.node.mempool)

    def test_unsigned_inputs_never_reach_the_state(self):
        tx = self.spend(PrivateKey.devnet(1).key_hash)
        blank = Transaction(tuple(TxIn(i.prevout, i.pubkey) for i in tx.inputs), tx.outputs,
                            tx.network_id)
        d = self.node.submit(blank)
        self.node.verifier.release()
        self.assertEqual(self.failureResultOf(d, TxRejected).value.code, "bad-signature")
        self.assertIsNone(self.node.state.lock_holder(self.op))
