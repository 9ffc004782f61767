"""Transaction relay by inventory: ``inv`` (txids) -> ``getdata`` -> ``tx``.

Each peer has a bounded set of txids it is known to have (it announced,
sent or requested them, or we announced them to it); a txid is announced to
a peer at most once and never back to where it came from. A txid is
requested from one peer at a time; if that peer does not deliver within
``getdata_timeout`` the next announcement of it is followed up.
"""

import hashlib

from twisted.internet import defer
from twisted.logger import Logger

from timecoin.ledger.tx import TxRejected
from timecoin.p2p import messages as m
from timecoin.p2p.framing import encode_frame
from timecoin.p2p.util import BoundedDict

#: Rejection codes that mean the sender relayed something no honest node would.
MISBEHAVIOUR_CODES = frozenset({"malformed", "too-large", "bad-signature", "wrong-network"})
MAX_IN_FLIGHT = 100_000
#: Transactions up to this size are pushed whole by the node that received them.
PUSH_MAX_BYTES = 4096


def txid_of(raw):
    """The txid of a transaction's canonical encoding (see :mod:`timecoin.ledger.tx`)."""
    return hashlib.blake2b(raw, digest_size=32).digest()


class TxRelay:
    """The relay state of one node, shared by all its connections."""

    log = Logger()

    def __init__(self, host, clock, config):
        self._host = host
        self._clock = clock
        self._timeout = config.getdata_timeout
        self._compress_threshold = config.compress_threshold
        #: Raw transactions announced by this node, to answer getdata.
        self.cache = BoundedDict(config.relay_cache_size)
        self._in_flight = {}  # txid -> deadline

    def broadcast(self, tx, peers, push=False):
        """Announce ``tx`` to each of ``peers`` not known to have it; how many.

        With ``push`` (the node's own submissions), a transaction of at most
        ``PUSH_MAX_BYTES`` is sent whole: it reaches the masternodes in one
        hop, ahead of the finality queries about it on the same connections.
        """
        txid = tx.txid
        self.cache[txid] = tx.raw
        announced = 0
        frame = None
        for peer in peers:
            if txid in peer.known_inventory:
                continue
            peer.known_inventory.add(txid)
            if frame is None:
                message = (m.TxMessage(tx.raw) if push and len(tx.raw) <= PUSH_MAX_BYTES
                           else m.Inv((txid,)))
                frame = encode_frame(message, self._compress_threshold)
            if peer.send_frame(frame):
                announced += 1
        return announced

    def on_inv(self, peer, txids):
        known = peer.known_inventory
        cache = self.cache
        have_tx = self._host.have_tx
        wanted = []
        for txid in txids:
            known.add(txid)
            if txid not in cache and not have_tx(txid):
                wanted.append(txid)
        if not wanted:
            return
        now = self._clock.seconds()
        in_flight = self._in_flight
        deadline = now + self._timeout
        requested = []
        for txid in wanted:
            if in_flight.get(txid, 0) <= now:
                in_flight[txid] = deadline
                requested.append(txid)
        if len(in_flight) > MAX_IN_FLIGHT:
            self._in_flight = {t: d for t, d in in_flight.items() if d > now}
        if requested:
            peer.send(m.GetData(tuple(requested)))

    def on_getdata(self, peer, txids):
        for txid in txids:
            raw = self.cache.get(txid)
            if raw is None:
                raw = self._host.get_tx_raw(txid)
            if raw is None:
                continue
            peer.known_inventory.add(txid)
            peer.send(m.TxMessage(raw))

    def on_tx(self, peer, raw):
        """Offer a received transaction to the node; a Deferred (errors handled)."""
        txid = txid_of(raw)
        peer.known_inventory.add(txid)
        self._in_flight.pop(txid, None)
        if txid in self.cache:
            return defer.succeed(None)
        d = defer.maybeDeferred(self._host.receive_tx, raw, peer.label)
        d.addErrback(self._rejected, peer, txid)
        return d

    def _rejected(self, failure, peer, txid):
        failure.trap(TxRejected)
        code = failure.value.code
        if code in MISBEHAVIOUR_CODES:
            peer.misbehave(f"relayed an invalid transaction ({code})")
        else:
            self.log.debug("transaction {txid} from {peer} not accepted: {code}",
                           txid=txid.hex(), peer=peer.label, code=code)
        return None
