"""The relay's table of requested transactions, with O(1) updates.

A txid asked of a peer with ``getdata`` stays in the table until it arrives
or its deadline passes. Deadlines are the request time plus one fixed
timeout, so insertion order is deadline order: expiry pops from the front of
an :class:`~collections.OrderedDict` (whose front is reached in O(1), unlike
a plain dict's after deletions), and nothing is ever rebuilt. Each peer's
requests are also kept in their own ordered table, in the same order.

Two limits bound it: ``per_peer`` outstanding requests per peer (a peer
announcing more is not asked for them until some arrive or expire), and
``capacity`` entries in all. When the table is full, the request forgotten
(it may be asked of another peer later) is the oldest of the peer with most
outstanding: a peer flooding announcements it never delivers loses its own
requests, not those of peers that ask for little.
"""

from collections import OrderedDict


class InFlightTable:
    """Txids requested from peers and not yet delivered, oldest first."""

    __slots__ = ("_entries", "_per_peer", "_expired_at", "capacity", "per_peer", "forgotten",
                 "refused")

    def __init__(self, capacity, per_peer):
        self._entries = OrderedDict()  # txid -> (deadline, peer_id)
        self._per_peer = {}  # peer_id -> OrderedDict of its txids, oldest first
        self._expired_at = None  # the time of the last expiry: nothing more expires then
        self.capacity = capacity
        self.per_peer = per_peer
        #: Requests forgotten because the table was full (a counter).
        self.forgotten = 0
        #: Announcements not requested because their peer had ``per_peer`` outstanding.
        self.refused = 0

    def __len__(self):
        return len(self._entries)

    def __contains__(self, txid):
        return txid in self._entries

    def outstanding(self, peer_id):
        """Requests of ``peer_id`` not yet delivered or expired."""
        requests = self._per_peer.get(peer_id)
        return 0 if requests is None else len(requests)

    def room(self, peer_id):
        """How many more requests ``peer_id`` may have outstanding."""
        return self.per_peer - self.outstanding(peer_id)

    def note_refused(self, count):
        """``count`` announcements were not requested for want of room."""
        self.refused += count

    def _release(self, txid, peer_id):
        requests = self._per_peer[peer_id]
        del requests[txid]
        if not requests:
            del self._per_peer[peer_id]

    def expire(self, now):
        """Forget every request whose deadline has passed (amortised O(1))."""
        if now == self._expired_at:
            return
        self._expired_at = now
        entries = self._entries
        while entries:
            txid = next(iter(entries))
            deadline, peer_id = entries[txid]
            if deadline > now:
                return
            entries.popitem(last=False)
            self._release(txid, peer_id)

    def _forget_one(self):
        """Make room: drop the oldest request of the peer with most outstanding
        (O(peers) to find it, O(1) to drop)."""
        per_peer = self._per_peer
        largest = max(per_peer, key=lambda peer_id: len(per_peer[peer_id]))
        requests = per_peer[largest]
        txid, _ = requests.popitem(last=False)
        if not requests:
            del per_peer[largest]
        del self._entries[txid]
        self.forgotten += 1

    def request(self, txids, peer_id, now, deadline):
        """The txids of ``txids`` to ask of ``peer_id`` now, recorded as in flight.

        A txid in flight from any peer (and not expired) is skipped; so is
        everything beyond the peer's ``per_peer`` outstanding requests.
        """
        self.expire(now)
        entries = self._entries
        room = self.room(peer_id)
        requested = []
        for txid in txids:
            entry = entries.get(txid)
            if entry is not None:
                if entry[0] > now:
                    continue
                del entries[txid]
                self._release(txid, entry[1])
            if room <= 0:
                self.refused += 1
                continue
            if len(entries) >= self.capacity:
                self._forget_one()
            own = self._per_peer.get(peer_id)
            if own is None:
                own = self._per_peer[peer_id] = OrderedDict()
            entries[txid] = (deadline, peer_id)
            own[txid] = None
            room -= 1
            requested.append(txid)
        return requested

    def delivered(self, txid):
        """``txid`` arrived: it is no longer in flight."""
        entry = self._entries.pop(txid, None)
        if entry is not None:
            self._release(txid, entry[1])
