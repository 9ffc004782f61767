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

from timecoin.finality_messages import SnowballVotes
from timecoin.interfaces import IFinality
from timecoin.p2p import messages as m

#: How long a query may wait for transactions being validated, and how often
#: it looks again.
HOLD_S = 1.0
RECHECK_S = 0.005


@implementer(IFinality)
class LocalFinality:
    """Decides every started transaction at once (see the module docstring)."""

    def __init__(self, clock):
        self._clock = clock
        self._queue = {}
        self._listeners = []
        self._call = None

    def attach(self, network, is_finalized, is_validating=lambda txid: False,
               has_tx=lambda txid: True):
        """Answer Snowball queries on ``network``. From the node: ``is_finalized(txid)``,
        ``is_validating(txid)`` (its inputs are loading) and ``has_tx(txid)``."""
        self._network = network
        self._is_finalized = is_finalized
        self._is_validating = is_validating
        self._has_tx = has_tx
        network.register_handler(m.SNOWBALL_QUERY, self._on_query)

    def _on_query(self, peer_id, query, deadline=None):
        now = self._clock.seconds()
        if deadline is None:
            deadline = now + HOLD_S
            unknown = tuple(t for t in query.txids if not self._has_tx(t))
            if unknown:
                self._network.send(peer_id, m.GetData(unknown[:m.MAX_INV]))
        if now < deadline and any(self._is_validating(t) or not self._has_tx(t)
                                  for t in query.txids):
            # A queried transaction is still arriving or being validated: a
            # "no" now would only make the poller burn a round. Answer once
            # it is decided (or refused), or at the deadline.
            self._clock.callLater(RECHECK_S, self._on_query, peer_id, query, deadline)
            return
        votes = tuple(t in self._queue or self._is_finalized(t) for t in query.txids)
        self._network.send(peer_id, SnowballVotes(query.poll_id, votes))

    def add_listener(self, callback):
        self._listeners.append(callback)

    def start(self, tx):
        self._queue[tx.txid] = tx
        if self._call is None:
            self._call = self._clock.callLater(0, self._decide)

    def cancel(self, txid):
        self._queue.pop(txid, None)

    def in_flight(self):
        return len(self._queue)

    def stop(self):
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def _decide(self):
        self._call = None
        queue, self._queue = self._queue, {}
        for txid in queue:
            for listener in self._listeners:
                listener(txid, True, "finalized")
