"""Snowball queries held until this node has settled the transactions they name.

A query can overtake the transaction it asks about (the relay, or this node's
validation, is still under way). Answering "no" at once would only make the
poller burn a round, so the query is held until every named transaction is
settled here — admitted to finality, or refused — and answered then; at the
deadline it is answered with what the node knows. Both finality components
(the lone masternode's and Snowball's) hold queries this way.
"""

import heapq
import itertools


class _Held:
    __slots__ = ("peer_id", "query", "missing", "answered")

    def __init__(self, peer_id, query, missing):
        self.peer_id = peer_id
        self.query = query
        self.missing = set(missing)
        self.answered = False


class HeldQueries:
    """Held queries indexed by the transactions they wait for, with one timer.

    ``answer(peer_id, query)`` sends the votes; it is called once per query.
    """

    def __init__(self, clock, answer):
        self._clock = clock
        self._answer = answer
        self._by_txid = {}  # txid -> [_Held]
        self._deadlines = []  # heap of (deadline, n, _Held)
        self._order = itertools.count()
        self._timer = None

    def __len__(self):
        return sum(1 for _, _, held in self._deadlines if not held.answered)

    def hold(self, peer_id, query, missing, timeout):
        """Hold ``query`` until every txid in ``missing`` is resolved, or ``timeout``."""
        held = _Held(peer_id, query, missing)
        for txid in held.missing:
            self._by_txid.setdefault(txid, []).append(held)
        deadline = self._clock.seconds() + timeout
        heapq.heappush(self._deadlines, (deadline, next(self._order), held))
        if self._timer is None or self._timer.getTime() > deadline:
            self._arm(deadline)

    def resolve(self, txid):
        """``txid`` is settled here: answer the queries that waited only for it."""
        for held in self._by_txid.pop(txid, ()):
            held.missing.discard(txid)
            if not held.missing and not held.answered:
                self._finish(held)

    def _finish(self, held):
        held.answered = True
        for txid in held.missing:
            waiting = self._by_txid.get(txid)
            if waiting is not None:
                waiting.remove(held)
                if not waiting:
                    del self._by_txid[txid]
        self._answer(held.peer_id, held.query)

    def _arm(self, deadline):
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = self._clock.callLater(max(0.0, deadline - self._clock.seconds()),
                                            self._expire)

    def _expire(self):
        self._timer = None
        now = self._clock.seconds()
        heap = self._deadlines
        while heap and (heap[0][0] <= now or heap[0][2].answered):
            _, _, held = heapq.heappop(heap)
            if not held.answered:
                self._finish(held)
        if heap:
            self._arm(heap[0][0])

    def stop(self):
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
