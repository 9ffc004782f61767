"""The relay's table of requested transactions, with O(1) updates.

A txid asked of a peer with ``getdata`` stays in the table until it arrives
or its deadline passes. Deadlines are the request time plus one fixed
timeout, so insertion order is deadline order: expiry pops from the front of
an :class:`~collections.OrderedDict` (whose front is reached in O(1), unlike
a plain dict's after deletions), and nothing is ever rebuilt.

Two limits bound it: ``capacity`` entries in all (the oldest request is
forgotten beyond it, and may be asked of another peer later), and
``per_peer`` outstanding requests per peer (a peer announcing more is not
asked for them until some arrive or expire).
"""

from collections import Counter, OrderedDict


class InFlightTable:
    """Txids requested from peers and not yet delivered, oldest first."""

    __slots__ = ("_entries", "_per_peer", "_expired_at", "capacity", "per_peer", "forgotten",
                 "refused")

    def __init__(self, capacity, per_peer):
        self._entries = OrderedDict()  # txid -> (deadline, peer_id)
        self._per_peer = Counter()
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
        return self._per_peer.get(peer_id, 0)

    def room(self, peer_id):
        """How many more requests ``peer_id`` may have outstanding."""
        return self.per_peer - self._per_peer.get(peer_id, 0)

    def note_refused(self, count):
        """``count`` announcements were not requested for want of room."""
        self.refused += count

    def _release(self, peer_id):
        left = self._per_peer[peer_id] - 1
        if left > 0:
            self._per_peer[peer_id] = left
        else:
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
            self._release(peer_id)

    def request(self, txids, peer_id, now, deadline):
        """The txids of ``txids`` to ask of ``peer_id`` now, recorded as in flight.

        A txid in flight from any peer (and not expired) is skipped; so is
        everything beyond the peer's ``per_peer`` outstanding requests.
        """
        self.expire(now)
        entries = self._entries
        room = self.per_peer - self._per_peer.get(peer_id, 0)
        requested = []
        for txid in txids:
            entry = entries.get(txid)
            if entry is not None:
                if entry[0] > now:
                    continue
                del entries[txid]
                self._release(entry[1])
            if room <= 0:
                self.refused += 1
                continue
            if len(entries) >= self.capacity:
                _, (_, oldest_peer) = entries.popitem(last=False)
                self._release(oldest_peer)
                self.forgotten += 1
            entries[txid] = (deadline, peer_id)
            room -= 1
            requested.append(txid)
        if requested:
            self._per_peer[peer_id] += len(requested)
        return requested

    def delivered(self, txid):
        """``txid`` arrived: it is no longer in flight."""
        entry = self._entries.pop(txid, None)
        if entry is not None:
            self._release(entry[1])
