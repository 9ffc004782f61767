"""Transaction relay by inventory: ``inv`` (txids) -> ``getdata`` -> ``tx``.

Each peer has a bounded set of txids it is known to have (it announced,
sent or requested them, or we announced them to it); a txid is announced to
a peer at most once and never back to where it came from. A txid is
requested from one peer at a time; if that peer does not deliver within
``getdata_timeout`` the next announcement of it is followed up. The table
of requests is an :class:`~timecoin.p2p.inflight.InFlightTable` (O(1) per
txid, bounded in all and per peer). Each peer's announcements are charged
to its txid budget (:meth:`~timecoin.p2p.ratelimit.PeerRateLimits.take_txids`);
the excess is dropped unrequested, and the connection is not read from
until the budget has refilled. A peer whose send buffer is over budget
(see :mod:`timecoin.p2p.sendbuffer`) is served no ``getdata`` and is sent
``inv`` instead of pushed transactions.
"""

import hashlib

from twisted.internet import defer
from twisted.logger import Logger

from timecoin.ledger.tx import TxRejected
from timecoin.p2p import messages as m
from timecoin.p2p.framing import encode_frame
from timecoin.p2p.inflight import InFlightTable
from timecoin.p2p.util import BoundedDict

#: Rejection codes that mean the sender relayed something no honest node would.
MISBEHAVIOUR_CODES = frozenset({"malformed", "too-large", "bad-signature", "wrong-network"})
#: Transactions up to this size are pushed whole by the node that received them.
PUSH_MAX_BYTES = 4096


def txid_of(raw):
    """The txid of a transaction's canonical encoding (see :mod:`timecoin.ledger.tx`)."""
    return hashlib.blake2b(raw, digest_size=32).digest()


class TxRelay:
    """The relay state of one node, shared by all its connections."""

    log = Logger()

    def __init__(self, host, clock, config, account):
        self._host = host
        self._clock = clock
        self._timeout = config.getdata_timeout
        self._compress_threshold = config.compress_threshold
        #: Raw transactions announced by this node, to answer getdata.
        self.cache = BoundedDict(config.relay_cache_size)
        self.in_flight = InFlightTable(config.max_in_flight, config.max_in_flight_per_peer)
        #: getdata txids answered from :attr:`cache`, and looked up in the node instead.
        self.cache_hits = self.cache_misses = 0
        self._account = account
        #: Announced txids dropped unrequested: beyond their peer's txid budget.
        self.inv_txids_dropped = 0

    def broadcast(self, tx, peers, push=False):
        """Announce ``tx`` to each of ``peers`` not known to have it; how many.

        With ``push`` (the node's own submissions), a transaction of at most
        ``PUSH_MAX_BYTES`` is sent whole: it reaches the masternodes in one
        hop, ahead of the finality queries about it on the same connections.
        """
        txid = tx.txid
        self.cache[txid] = tx.raw
        announced = 0
        push = push and len(tx.raw) <= PUSH_MAX_BYTES
        frames = {}
        for peer in peers:
            if txid in peer.known_inventory:
                continue
            peer.known_inventory.add(txid)
            whole = push
            if whole and peer.over_budget:
                whole = False
                self._account.pushes_skipped += 1
            frame = frames.get(whole)
            if frame is None:
                message = m.TxMessage(tx.raw) if whole else m.Inv((txid,))
                frame = frames[whole] = encode_frame(message, self._compress_threshold)
            if peer.send_frame(frame, m.TX if whole else m.INV):
                announced += 1
        return announced

    def on_inv(self, peer, txids):
        """Request the announced txids this node lacks, within the peer's budgets.

        Txids beyond the peer's txid budget are dropped (counted in
        :attr:`inv_txids_dropped`) and the peer is not read from until the
        budget has refilled for a full ``inv``; when the peer already has its maximum
        of requests outstanding nothing is looked up at all; otherwise each
        txid costs set lookups until the peer's room is filled.
        """
        now = self._clock.seconds()
        count = len(txids)
        allowed = peer.limits.take_txids(now, count)
        if allowed < count:
            self.inv_txids_dropped += count - allowed
            # Read no more of this peer until its budget covers a full inv.
            peer.hold_receiving(peer.limits.txid_refill_time(m.MAX_INV))
            if not allowed:
                return
            txids = txids[:allowed]
        peer.known_inventory.update(txids)
        in_flight = self.in_flight
        in_flight.expire(now)
        room = in_flight.room(peer.peer_id)
        if room <= 0:
            in_flight.note_refused(len(txids))
            return
        cache = self.cache
        have_tx = self._host.have_tx
        wanted = []
        scanned = 0
        for txid in txids:
            scanned += 1
            if txid in in_flight or txid in cache or have_tx(txid):
                continue
            wanted.append(txid)
            if len(wanted) >= room:
                break
        in_flight.note_refused(len(txids) - scanned)
        if not wanted:
            return
        requested = in_flight.request(wanted, peer.peer_id, now, now + self._timeout)
        if requested:
            peer.send(m.GetData(tuple(requested)))

    def on_getdata(self, peer, txids):
        if peer.over_budget:
            self._account.getdata_skipped += len(txids)
            return
        for txid in txids:
            if peer.over_budget:  # this very answer filled the buffer
                self._account.getdata_skipped += 1
                continue
            raw = self.cache.get(txid)
            if raw is None:
                self.cache_misses += 1
                raw = self._host.get_tx_raw(txid)
            else:
                self.cache_hits += 1
            if raw is None:
                continue
            peer.known_inventory.add(txid)
            if not peer.send(m.TxMessage(raw)):
                return

    def on_tx(self, peer, raw):
        """Offer a received transaction to the node; a Deferred (errors handled)."""
        txid = txid_of(raw)
        peer.known_inventory.add(txid)
        self.in_flight.delivered(txid)
        if txid in self.cache:
            return defer.succeed(None)
        d = defer.maybeDeferred(self._host.receive_tx, raw, peer.label)
        d.addCallback(self._accepted, peer)
        d.addErrback(self._rejected, peer, txid)
        return d

    @staticmethod
    def _accepted(result, peer):
        peer.mark_useful()
        return result

    def _rejected(self, failure, peer, txid):
        failure.trap(TxRejected)
        code = failure.value.code
        if code in MISBEHAVIOUR_CODES:
            peer.misbehave(f"relayed an invalid transaction ({code})")
        else:
            self.log.debug("transaction {txid} from {peer} not accepted: {code}",
                           txid=txid.hex(), peer=peer.label, code=code)
        return None
