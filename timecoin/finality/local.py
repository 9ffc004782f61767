"""Finality for a lone masternode: the node's own vote is the whole quorum.

A devnet with one masternode has a sample of size zero and a quorum of itself,
so every transaction that passed validation and holds its locks is accepted.
Decisions are batched: everything started during one reactor turn is decided
together on the next, through the injected clock.

Other nodes of that network (plain nodes, which poll the masternode) still
ask it; :meth:`LocalFinality.attach` answers their Snowball queries: yes for
a transaction it finalized or is about to, no otherwise.
"""

from zope.interface import implementer

from timecoin.finality.held_queries import HeldQueries
from timecoin.finality.messages import SnowballVotes
from timecoin.finality.statistics import finality_statistics
from timecoin.interfaces import IFinality
from timecoin.p2p import messages as m

#: How long a query may wait for transactions still arriving or validating.
HOLD_S = 1.0


@implementer(IFinality)
class LocalFinality:
    """Decides every started transaction at once (see the module docstring)."""

    #: No back-pressure: decisions take one reactor turn.
    max_in_flight = None
    #: The first transaction to lock an output holds it: no double spend is started.
    accepts_conflicts = False

    def __init__(self, clock):
        self._clock = clock
        self._network = None
        self._host = None
        self._queue = {}
        self._listeners = []
        self._call = None
        self._decided = 0
        self._held = HeldQueries(clock, self._answer)

    def attach(self, network, host):
        """Answer Snowball queries on ``network``; ``host`` (the node) says which
        txids finalized lately, are validating, or are here at all."""
        self._network = network
        self._host = host
        network.register_handler(m.SNOWBALL_QUERY, self._on_query)

    def _on_query(self, peer_id, query):
        # A transaction still arriving or being validated is waited for (see
        # timecoin.finality.held_queries); one not here at all is fetched from the asker.
        host = self._host
        waiting = [t for t in query.txids if host.is_validating(t) or not host.have_tx(t)]
        if not waiting:
            self._answer(peer_id, query)
            return
        fetch = tuple(t for t in waiting if not host.have_tx(t))
        if fetch:
            self._network.send(peer_id, m.GetData(fetch[:m.MAX_INV]))
        self._held.hold(peer_id, query, waiting, HOLD_S)

    def _answer(self, peer_id, query):
        votes = tuple(t in self._queue or self._host.finalized_recently(t) for t in query.txids)
        self._network.send(peer_id, SnowballVotes(query.poll_id, votes))

    def tx_settled(self, txid):
        """The node refused ``txid`` at entry: queries waiting for it get a "no"."""
        self._held.resolve(txid)

    def add_listener(self, callback):
        self._listeners.append(callback)

    def restore(self, txs, records):
        """A lone masternode saves no conflict sets (it sends no votes that
        count): whatever was pending is decided again, like a new transaction."""
        for tx in txs:
            self.start(tx)

    def start(self, tx):
        self._queue[tx.txid] = tx
        self._held.resolve(tx.txid)
        if self._call is None:
            self._call = self._clock.callLater(0, self._decide)

    def can_forget(self, txid):
        return True

    def cancel(self, txid):
        """Forget ``txid``: a lone masternode's decision is one reactor turn away,
        nobody else's vote depends on it."""
        self._queue.pop(txid, None)
        return True

    def stalled(self):
        return 0

    def pending_reason(self, txid):
        return None

    def stalled_sets(self):
        """A lone masternode decides every transaction: nothing stalls."""
        return []

    def decide_by_block(self, txid, height):
        """A lone masternode finalized the transaction already, or will in a turn."""

    def may_decide_by_block(self, txid):
        """Nothing stalls here: no block decides a set for a lone masternode."""
        return False

    def vote_for_block(self, txid):
        return False

    def set_masternodes(self, weights):
        """A lone masternode decides alone whatever the active set says."""

    def in_flight(self):
        return len(self._queue)

    #: A lone masternode always reaches its whole quorum: itself.
    poll_abort_reason = None

    def report_finalized(self, txid, outpoints, reporters):
        """A lone masternode decides alone: reports change nothing."""
        return False

    def statistics(self):
        """The Snowball metrics' names too: every decision took no poll round."""
        return finality_statistics(rounds={0: self._decided} if self._decided else {})

    def stop(self):
        self._held.stop()
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def _decide(self):
        self._call = None
        queue, self._queue = self._queue, {}
        self._decided += len(queue)
        for txid in queue:
            for listener in self._listeners:
                listener(txid, True, "finalized")
