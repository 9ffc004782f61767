"""Fake and synchronous components for tests and benchmarks that drive a node in-process."""

from twisted.internet import defer
from zope.interface import implementer

from timecoin.interfaces import IFinality, IFinalityHost
from timecoin.storage.store import Storage


@implementer(IFinalityHost)
class KnownTransactions:
    """What a node knows of txids, as plain sets a test fills in."""

    def __init__(self, finalized=(), validating=(), present=(), settled=(), rejected=()):
        self.finalized = set(finalized)
        self.rejected = set(rejected)
        self.validating = set(validating)
        self.present = set(present)
        self.settled_ones = set(settled)
        self.saved = []  # (records, Deferred) given to save_conflict_sets
        self.save_at_once = True

    def finalized_recently(self, txid):
        return txid in self.finalized

    def is_validating(self, txid):
        return txid in self.validating

    def have_tx(self, txid):
        return txid in self.present

    def settled(self, txid):
        return txid in self.settled_ones

    def decision(self, txid):
        if txid in self.finalized:
            return True
        return False if txid in self.rejected else None

    def save_conflict_sets(self, records):
        """Recorded in ``saved``; the Deferred fires when the test calls
        ``commit_saved`` (at once if ``save_at_once``)."""
        d = defer.Deferred()
        self.saved.append((list(records), d))
        if self.save_at_once:
            self.commit_saved()
        return d

    def commit_saved(self):
        """Fire every Deferred ``save_conflict_sets`` returned so far."""
        for _, d in self.saved:
            if not d.called:
                d.callback(None)


class SyncStorage(Storage):
    """The real storage, run on the calling thread: every Deferred has fired on return."""

    def _run(self, fn, *args, operation="other"):
        return defer.maybeDeferred(self._timed, operation, fn, args)

    def close(self):
        self._close_now()
        return defer.succeed(None)


@implementer(IFinality)
class ManualFinality:
    """Finality decided by the test: ``decide(txid, accepted)``.

    ``settled`` lists the txids the node refused at entry (``tx_settled``);
    ``polled`` holds txids the test says entered a poll (``cancel`` refuses
    them), ``stalled_reasons`` maps stalled txids to their reason.
    """

    max_in_flight = None
    accepts_conflicts = False

    def __init__(self, max_in_flight=None, accepts_conflicts=False):
        self.started = {}
        self.settled = []
        self.reports = []
        self.polled = set()
        self.stalled_reasons = {}
        #: txid -> the txids a block deciding it rejects (``decide_by_block``).
        self.conflicts = {}
        self.max_in_flight = max_in_flight
        self.accepts_conflicts = accepts_conflicts
        self._listeners = []
        self.network = self.host = None
        self.restored = []
        self.voted_yes = set()  # txids the test says this node answered "yes" for
        self.block_votes = []  # txids vote_for_block pinned

    def attach(self, network, host):
        self.network, self.host = network, host

    def tx_settled(self, txid):
        self.settled.append(txid)

    def restore(self, txs, records):
        """Restored transactions are started again; ``restored`` keeps the records."""
        self.restored = list(records)
        for tx in txs:
            self.start(tx)

    def statistics(self):
        return []

    def stop(self):
        pass

    def start(self, tx):
        self.started[tx.txid] = tx

    def can_forget(self, txid):
        return txid not in self.polled

    def cancel(self, txid):
        if txid in self.polled:
            return False
        self.started.pop(txid, None)
        return True

    def stalled(self):
        return sum(1 for t in self.stalled_reasons if t in self.started)

    def pending_reason(self, txid):
        return self.stalled_reasons.get(txid) if txid in self.started else None

    def stalled_sets(self):
        """Each stalled txid the test named with its started ``conflicts``
        (confidence 0 each)."""
        return [[(t, 0)] + [(r, 0) for r in self.conflicts.get(t, ()) if r in self.started]
                for t in self.stalled_reasons if t in self.started]

    def decide_by_block(self, txid, height):
        """Accept ``txid`` (if started) and reject the started txids ``conflicts``
        names for it, as a block at ``height`` would."""
        if txid not in self.started:
            return
        for rival in self.conflicts.get(txid, ()):
            if rival in self.started:
                self.decide(rival, False, f"conflict: decided by block {height}")
        self.decide(txid, True, "decided-by-block")

    def may_decide_by_block(self, txid):
        """Started, and no rival (``conflicts``) in ``voted_yes`` or pinned."""
        if txid not in self.started:
            return False
        rivals = set(self.conflicts.get(txid, ()))
        return not (rivals & (self.voted_yes | set(self.block_votes)))

    def vote_for_block(self, txid):
        if not self.may_decide_by_block(txid):
            return False
        self.block_votes.append(txid)
        return True

    def add_listener(self, callback):
        self._listeners.append(callback)

    def set_masternodes(self, weights):
        """Recorded for the test (``masternode_weights``)."""
        self.masternode_weights = dict(weights)

    def in_flight(self):
        return len(self.started) - self.stalled()

    poll_abort_reason = None

    def report_finalized(self, txid, outpoints, reporters):
        """Records the report; the test decides."""
        self.reports.append((txid, tuple(outpoints), frozenset(reporters)))
        return False

    def decide(self, txid, accepted, reason="test"):
        self.started.pop(txid, None)
        for listener in self._listeners:
            listener(txid, accepted, reason)
