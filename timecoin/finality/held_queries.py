"""Snowball queries held until this node has settled the transactions they name.

A query can overtake the transaction it asks about (the relay, or this node's
validation, is still under way). Answering "no" at once would only make the
poller burn a round, so the query is held until every named transaction is
settled here — admitted to finality, or refused — and answered then; at the
deadline it is answered with what the node knows. Both finality components
(the lone masternode's and Snowball's) hold queries this way.
"""

from timecoin.finality.deadlines import Deadlines


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
        self._answer = answer
        self._by_txid = {}  # txid -> [_Held]
        self._deadlines = Deadlines(clock, self._finish, lambda held: held.answered)

    def __len__(self):
        return self._deadlines.pending()

    def hold(self, peer_id, query, missing, timeout):
        """Hold ``query`` until every txid in ``missing`` is resolved, or ``timeout``."""
        held = _Held(peer_id, query, missing)
        for txid in held.missing:
            self._by_txid.setdefault(txid, []).append(held)
        self._deadlines.schedule(timeout, held)

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

    def stop(self):
        self._deadlines.stop()
