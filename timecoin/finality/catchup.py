"""Catching up on finality decisions a node missed (it was down, or lagged).

Every ``interval`` seconds, and as soon as a masternode peer connects, the node
asks each connected masternode for the entries of its finality journal after
the last one it has seen from that masternode (a cursor per masternode). A
transaction from those pages is applied once a strict majority of the other
masternodes reported it finalized: no single masternode can make a node
finalize anything. Transactions are tried in the order their first reporter
finalized them, so parents come before the transactions that spend them; one
whose inputs are not there yet waits for the next round.

This is an interim mechanism: blocks with BFT commit certificates and state
snapshots (a later protocol version) will give joining nodes proof instead of
a majority's word.
"""

from collections import OrderedDict

from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer

from timecoin.finality.messages import (
    FINALIZED,
    GET_FINALIZED,
    MAX_FINALIZED_PAGE,
    Finalized,
    GetFinalized,
)
from timecoin.interfaces import IFinalitySync
from timecoin.ledger.tx import TxRejected, decode_tx

MAX_CLAIMS = 200_000
#: A request unanswered this long is sent again.
REQUEST_TIMEOUT_S = 30.0


class _Claim:
    __slots__ = ("raw", "reporters")

    def __init__(self, raw):
        self.raw = raw
        self.reporters = set()


@implementer(IFinalitySync)
class FinalitySync(Service):
    """Pulls other masternodes' finality journals (see the module docstring).

    ``node`` provides ``ICatchupHost``; the network given to :meth:`attach`,
    ``IPeerMessaging``.
    """

    log = Logger()

    def __init__(self, clock, node, masternodes, self_pubkey, interval=2.0):
        self._clock = clock
        self._node = node
        self._masternodes = set(masternodes) - {self_pubkey}
        self.needed = len(self._masternodes) // 2 + 1
        self.interval = interval
        self._network = None
        self._cursors = {}  # masternode pubkey -> last journal seq seen
        self._asking = {}  # pubkey -> when its outstanding request was sent
        self._claims = OrderedDict()  # txid -> _Claim
        self._applying = None
        self._loop = None
        self.applied = 0

    def attach(self, network):
        self._network = network
        network.register_handler(GET_FINALIZED, self._on_request)
        network.register_handler(FINALIZED, self._on_page)

    def startService(self):
        super().startService()
        self._loop = LoopingCall(self.poll)
        self._loop.clock = self._clock
        self._loop.start(self.interval, now=False)

    def stopService(self):
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        return self._applying

    def poll(self):
        """Ask every connected masternode without an outstanding request."""
        if self._network is None or not self._masternodes:
            return
        stale = self._clock.seconds() - REQUEST_TIMEOUT_S
        for peer in self._network.peers():
            if peer.pubkey in self._masternodes and self._asking.get(peer.pubkey, stale) <= stale:
                self._ask(peer.peer_id, peer.pubkey)

    def _ask(self, peer_id, pubkey):
        self._asking[pubkey] = self._clock.seconds()
        request = GetFinalized(self._cursors.get(pubkey, 0), MAX_FINALIZED_PAGE)
        if not self._network.send(peer_id, request):
            self._asking.pop(pubkey, None)

    # -- serving -------------------------------------------------------------

    def _on_request(self, peer_id, message):
        d = self._node.journal_page(message.after_seq, message.limit + 1)

        def send(rows):
            more = len(rows) > message.limit
            self._network.send(peer_id, Finalized(tuple(rows[:message.limit]), more))
        d.addCallback(send)
        d.addErrback(lambda f: self.log.failure("serving finalized transactions", f))

    # -- applying ------------------------------------------------------------

    def _on_page(self, peer_id, message):
        peer = self._network.get_peer(peer_id)
        pubkey = peer.pubkey if peer is not None else None
        if pubkey not in self._masternodes:
            return
        self._asking.pop(pubkey, None)
        for seq, raw in message.entries:
            self._cursors[pubkey] = max(self._cursors.get(pubkey, 0), seq)
            try:
                txid = decode_tx(raw).txid
            except TxRejected:
                continue
            claim = self._claims.get(txid)
            if claim is None:
                if self._node.finalized_recently(txid):
                    continue
                claim = self._claims[txid] = _Claim(raw)
                while len(self._claims) > MAX_CLAIMS:
                    self._claims.popitem(last=False)
            claim.reporters.add(pubkey)
        if message.more:
            self._ask(peer_id, pubkey)
        self._apply_ready()

    def _apply_ready(self):
        if self._applying is None:
            self._applying = self._apply_all()
            self._applying.addBoth(self._applied)

    def _applied(self, result):
        self._applying = None
        return None

    @defer.inlineCallbacks
    def _apply_all(self):
        progress = True
        while progress:
            progress = False
            for txid, claim in list(self._claims.items()):
                if len(claim.reporters) < self.needed:
                    continue
                try:
                    tx = decode_tx(claim.raw)
                    applied = yield self._node.apply_finalized(tx)
                except TxRejected as e:
                    if e.code in ("missing-input", "input-pending"):
                        continue  # a parent is not applied yet
                    self.log.warn("cannot apply finalized {txid}: {error}", txid=txid.hex(),
                                  error=e)
                    applied = False
                self._claims.pop(txid, None)
                if applied:
                    self.applied += 1
                    progress = True
