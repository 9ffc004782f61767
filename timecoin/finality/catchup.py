"""Catching up on finality decisions a node missed (it was down, or lagged).

The node asks connected masternodes for the entries of their finality journal
after the last one it has seen from each (a cursor per masternode). What they
report is *information* for the finality engine, never an order:

* a reported transaction this node does not have is submitted like one a peer
  relayed (validated, locked, entered into Snowball);
* then the finality component hears who reported it
  (``IFinality.report_finalized``): it applies the decision directly only if
  the reporters hold more than ``alpha`` of the active *stake* and the
  transaction conflicts with nothing this node has pending; otherwise the
  transaction is polled as usual. Head counts play no part: two of four
  equal masternodes never suffice.

Transactions are tried in the order their first reporter finalized them, so
parents come before the transactions that spend them; one whose inputs are not
there yet waits for the next round. A claim is re-reported when more
masternodes report it, and dropped once this node settled the transaction.

Pulling only when behind: a masternode is asked at connection, and again every
``interval`` while its pages bring something this node had not finalized. A
page with nothing new and no more to come marks that masternode *in sync*: it
is asked again only after ``idle_interval``, on reconnection, or as soon as
another masternode's page shows this node is behind. Cursors live in memory; a
restarted node reads the journals again from the start (once per
masternode, not every interval).

This is an interim mechanism: blocks with BFT commit certificates (a later
protocol version) will give joining nodes proof instead of reports.
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
from timecoin.ledger.tx import KIND_BLOCK_REWARD, TxRejected, decode_tx

MAX_CLAIMS = 200_000
#: A request unanswered this long is sent again.
REQUEST_TIMEOUT_S = 30.0
#: An in-sync masternode is asked again after this long (a backstop for
#: decisions missed while connected).
IDLE_INTERVAL_S = 300.0
#: Submission outcomes that mean "try again later": a parent is not here yet.
_WAIT_CODES = frozenset({"missing-input", "input-pending"})
#: Submission outcomes after which the transaction is entered (or was already).
_ENTERED_CODES = frozenset({"already-known"})


class _Claim:
    __slots__ = ("tx", "reporters", "reported")

    def __init__(self, tx):
        self.tx = tx
        self.reporters = set()
        self.reported = 0  # len(reporters) when last given to finality


@implementer(IFinalitySync)
class FinalitySync(Service):
    """Pulls other masternodes' finality journals (see the module docstring).

    ``node`` provides ``ICatchupHost``; ``finality`` ``IFinality`` (it judges
    the reports by stake); the network given to :meth:`attach`,
    ``IPeerMessaging``.
    """

    log = Logger()

    def __init__(self, clock, node, finality, masternodes, self_pubkey, interval=2.0,
                 idle_interval=IDLE_INTERVAL_S):
        self._clock = clock
        self._node = node
        self._finality = finality
        self._masternodes = set(masternodes) - {self_pubkey}
        self.interval = interval
        self.idle_interval = idle_interval
        self._network = None
        self._cursors = {}  # masternode pubkey -> last journal seq seen
        self._asking = {}  # pubkey -> when its outstanding request was sent
        self._in_sync = {}  # pubkey -> when its last page brought nothing new
        self._connected = set()  # pubkeys seen connected at the last poll
        self._claims = OrderedDict()  # txid -> _Claim
        self._applying = None
        self._loop = None
        self.applied = 0
        self.entered = 0
        self.requests = 0

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

    def in_sync(self, pubkey):
        """True if ``pubkey``'s last page brought nothing this node lacked."""
        return pubkey in self._in_sync

    def poll(self):
        """Ask every connected masternode that this node may be behind of."""
        if self._network is None or not self._masternodes:
            return
        now = self._clock.seconds()
        stale = now - REQUEST_TIMEOUT_S
        connected = set()
        for peer in self._network.peers():
            pubkey = peer.pubkey
            if pubkey not in self._masternodes:
                continue
            connected.add(pubkey)
            if pubkey not in self._connected:
                self._in_sync.pop(pubkey, None)  # (re)connected: it may know more
            synced_at = self._in_sync.get(pubkey)
            if synced_at is not None and now - synced_at < self.idle_interval:
                continue
            if self._asking.get(pubkey, stale) <= stale:
                self._ask(peer.peer_id, pubkey)
        self._connected = connected
        if self._claims:
            self._apply_ready()  # claims waiting for a parent, or for more reporters

    def _ask(self, peer_id, pubkey):
        self._asking[pubkey] = self._clock.seconds()
        self.requests += 1
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

    # -- taking reports ------------------------------------------------------

    def _on_page(self, peer_id, message):
        peer = self._network.get_peer(peer_id)
        pubkey = peer.pubkey if peer is not None else None
        if pubkey not in self._masternodes:
            return
        self._asking.pop(pubkey, None)
        new = 0
        for seq, raw in message.entries:
            self._cursors[pubkey] = max(self._cursors.get(pubkey, 0), seq)
            try:
                tx = decode_tx(raw)
            except TxRejected:
                continue
            if tx.kind == KIND_BLOCK_REWARD:
                continue  # a block's reward comes with its block (block sync)
            txid = tx.txid
            claim = self._claims.get(txid)
            if claim is None:
                if self._node.finalized_recently(txid):
                    continue
                claim = self._claims[txid] = _Claim(tx)
                while len(self._claims) > MAX_CLAIMS:
                    self._claims.popitem(last=False)
            new += 1
            claim.reporters.add(pubkey)
        if message.more:
            self._in_sync.pop(pubkey, None)
            self._ask(peer_id, pubkey)
        elif new:
            # This node lags: whatever the others said, ask them all again.
            self._in_sync.clear()
        else:
            self._in_sync[pubkey] = self._clock.seconds()
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
                if self._node.settled(txid):
                    self._claims.pop(txid, None)
                    continue
                if claim.reported >= len(claim.reporters):
                    continue  # told finality already, nobody new since
                entered = yield self._enter(claim.tx)
                if entered is None:
                    continue  # a parent is missing: next round
                if not entered:
                    self._claims.pop(txid, None)
                    continue
                claim.reported = len(claim.reporters)
                outpoints = [i.prevout for i in claim.tx.inputs]
                if self._finality.report_finalized(txid, outpoints, frozenset(claim.reporters)):
                    self.applied += 1
                    progress = True
                if self._node.settled(txid):
                    self._claims.pop(txid, None)

    @defer.inlineCallbacks
    def _enter(self, tx):
        """Submit ``tx`` if not here: True once entered, None to wait, False to drop."""
        if self._node.have_tx(tx.txid):
            return True
        if (yield self._node.finalized_here(tx.txid)):
            return False  # finalized before a restart: nothing to do
        try:
            yield self._node.submit_raw(tx.raw, True)
            self.entered += 1
        except TxRejected as e:
            if e.code in _WAIT_CODES:
                return None
            if e.code in _ENTERED_CODES:
                return True
            self.log.warn("reported finalized, refused here: {txid}: {error}",
                          txid=tx.txid.hex(), error=e)
            return False
        return True
