"""Fetching the newest certified UTXO snapshot from several peers.

A fresh node started with snapshot sync runs :class:`SnapshotFetcher`:

1. **Offers.** Every ready peer is asked ``get_snapshot``. An offer is
   checked before anything is fetched (:func:`check_offer`): its finality
   proof must verify against the genesis (the hand-offs carry the active set
   from the genesis to the block, and the block's commit certificate must be
   signed by more than 2/3 of the set in force, by stake), the block must be
   the proof's, the manifest of that block and its set hash, and the
   registry's active set the header's ``masternode_set_hash``. A peer whose
   offer does not check is banned. Offers are collected for ``offer_wait``
   seconds after the first; the highest certified height wins, among its
   manifests the one the most peers offered.
2. **Chunks.** Chunks are asked of the peers that offered the chosen
   manifest, at most ``max_in_flight`` at once and ``per_peer`` per peer.
   Each is checked as it arrives (``SnapshotAssembly.add``); a refused chunk,
   or an empty answer from a peer that offered the snapshot, bans the peer
   and the chunk is asked of another. An unanswered request is asked again
   elsewhere after ``request_timeout``; a peer with ``max_strikes`` of those
   is no longer asked (not banned: slow is not lying).
3. **The set.** With every chunk in, the MuHash of the whole set must be the
   certified header's ``utxo_set_hash``; if not, the manifest lied: every
   peer that offered it is banned and the next candidate is tried. Then the
   registry's active collaterals must be in the set, and the snapshot goes
   to the ``ISnapshotInstaller`` (one storage transaction).

:attr:`SnapshotFetcher.finished` fires with the :class:`FetchedSnapshot`
once installed, or with None when there is nothing to fetch: every peer
asked answered that it serves no snapshot, or no snapshot was installed
within ``give_up_after`` seconds while none was being fetched (the node then
replays the blocks from the genesis, which needs no snapshot). Time comes
from the injected clock.
"""

from dataclasses import dataclass

from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from timecoin.consensus.bft_messages import MessageError
from timecoin.finality.snapshot_messages import GetSnapshot, GetSnapshotChunk
from timecoin.ledger.block import Block, BlockError
from timecoin.ledger.encoding import ReasonError
from timecoin.ledger.snapshot import SnapshotAssembly, SnapshotError, SnapshotManifest
from timecoin.ledger.snapshot_registry import check_registry, decode_registry
from timecoin.ledger.tx import OutPoint
from timecoin.p2p import messages as m
from timecoin.proofs.finality import FinalityProof
from timecoin.proofs.verify import check_proof

MAX_IN_FLIGHT = 8
PER_PEER = 2
OFFER_WAIT_S = 2.0
REQUEST_TIMEOUT_S = 15.0
MAX_STRIKES = 3
TICK_S = 0.5
GIVE_UP_AFTER_S = 120.0


@dataclass(frozen=True)
class CheckedOffer:
    """An offer whose proof, block, manifest and registry agree."""

    manifest: SnapshotManifest
    registry_rows: list
    proof: FinalityProof
    block: Block


@dataclass
class FetchedSnapshot:
    """A snapshot rebuilt and checked: what the installer gets."""

    offer: CheckedOffer
    outputs: list
    muhash: object

    @property
    def height(self):
        return self.offer.manifest.height


def check_offer(offer, genesis):
    """The :class:`CheckedOffer` of a ``snapshot_offer``; raises a
    :class:`~timecoin.ledger.encoding.ReasonError` (proof, snapshot or
    registry refusal) or ``BlockError``."""
    manifest = SnapshotManifest.decode(offer.manifest)
    proof = FinalityProof.decode(offer.proof)
    check_proof(proof, genesis)
    try:
        block = Block.decode(offer.block)
    except (BlockError, MessageError) as e:
        raise SnapshotError("header-mismatch", f"the block does not decode: {e}") from None
    if block.header.encode() != proof.header.encode() or proof.txid not in block.all_txids:
        raise SnapshotError("header-mismatch", "the block is not the proof's")
    manifest.check_header(proof.header)
    rows = decode_registry(offer.registry)
    check_registry(rows, proof.header, lambda outpoint: True)  # collaterals: at the end
    return CheckedOffer(manifest, rows, proof, block)


class _Candidate:
    """One offered snapshot (a manifest and registry) and who offered it."""

    def __init__(self, checked):
        self.checked = checked
        self.peers = set()
        self.tried = False


class SnapshotFetcher(Service):
    """Fetches and installs the newest certified snapshot (module docstring).

    ``network`` provides ``IPeerMessaging`` and ``IPeerPolicing``;
    ``installer`` ``ISnapshotInstaller``.
    """

    log = Logger()

    def __init__(self, clock, genesis, installer, max_in_flight=MAX_IN_FLIGHT,
                 per_peer=PER_PEER, offer_wait=OFFER_WAIT_S,
                 request_timeout=REQUEST_TIMEOUT_S, max_strikes=MAX_STRIKES, tick=TICK_S,
                 give_up_after=GIVE_UP_AFTER_S):
        self._clock = clock
        self._genesis = genesis
        self._installer = installer
        self.max_in_flight = max_in_flight
        self.per_peer = per_peer
        self.offer_wait = offer_wait
        self.request_timeout = request_timeout
        self.max_strikes = max_strikes
        self._tick_s = tick
        self.give_up_after = give_up_after
        self._started_at = None
        self._answered_empty = set()
        self._network = None
        self._loop = None
        #: "offers", "chunks", "installing", "done", "none" (nothing to
        #: fetch) or "failed".
        self.state = "offers"
        self.finished = defer.Deferred()
        self._asked = set()
        self._candidates = {}  # (manifest bytes, registry bytes) -> _Candidate
        self._first_offer_at = None
        self._current = None
        self._assembly = None
        self._sources = set()
        self._strikes = {}
        self._in_flight = {}  # chunk index -> (peer_id, sent at)
        self._outputs = {}
        #: Peers banned for what they sent, and why (``[(peer_id, reason)]``).
        self.banned = []
        self.chunks_refused = 0

    def attach(self, network):
        self._network = network
        network.register_handler(m.SNAPSHOT_OFFER, self._on_offer)
        network.register_handler(m.SNAPSHOT_CHUNK, self._on_chunk)

    def startService(self):
        super().startService()
        self._started_at = self._clock.seconds()
        self._loop = LoopingCall(self._tick)
        self._loop.clock = self._clock
        self._loop.start(self._tick_s, now=True)

    def stopService(self):
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()

    # -- offers ----------------------------------------------------------------

    def _tick(self):
        if self._network is None:
            return
        if self.state == "offers":
            for peer in self._network.peers():
                if peer.peer_id not in self._asked and self._network.send(peer.peer_id,
                                                                          GetSnapshot()):
                    self._asked.add(peer.peer_id)
            now = self._clock.seconds()
            if self._first_offer_at is not None and now - self._first_offer_at >= self.offer_wait:
                self._choose()
            elif not self._candidates and self._asked and self._asked <= self._answered_empty:
                self._give_up("no peer serves a snapshot")
            elif now - self._started_at >= self.give_up_after:
                self._give_up(f"no snapshot installed in {self.give_up_after:g} s")
        elif self.state == "chunks":
            self._expire()
            self._pump()

    def _ban(self, peer_id, reason):
        self.banned.append((peer_id, reason))
        self.log.warn("snapshot sync: peer {peer} banned: {reason}", peer=peer_id,
                      reason=reason)
        self._network.ban_peer(peer_id, reason)
        self._sources.discard(peer_id)
        for candidate in self._candidates.values():
            candidate.peers.discard(peer_id)

    def _give_up(self, why):
        self.state = "none"
        self.log.info("snapshot sync: {why}; the blocks are replayed from the genesis",
                      why=why)
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self.finished.callback(None)

    def _on_offer(self, peer_id, offer):
        if peer_id not in self._asked:
            return
        if offer.empty:
            self._answered_empty.add(peer_id)
            return
        try:
            checked = check_offer(offer, self._genesis)
        except (ReasonError, BlockError) as e:
            self._ban(peer_id, f"snapshot offer refused: {e}")
            return
        key = (offer.manifest, offer.registry)
        candidate = self._candidates.setdefault(key, _Candidate(checked))
        candidate.peers.add(peer_id)
        if self.state == "chunks" and candidate is self._current:
            self._sources.add(peer_id)
        if self._first_offer_at is None:
            self._first_offer_at = self._clock.seconds()

    def _choose(self):
        open_ = [c for c in self._candidates.values() if not c.tried and c.peers]
        if not open_:
            self._first_offer_at = None
            self._asked.clear()  # ask again: peers may have cut a snapshot since
            return
        best = max(open_, key=lambda c: (c.checked.manifest.height, len(c.peers)))
        best.tried = True
        self._current = best
        manifest = best.checked.manifest
        self._assembly = SnapshotAssembly(manifest, best.checked.proof.header)
        self._sources = set(best.peers)
        self._in_flight, self._outputs, self._strikes = {}, {}, {}
        self.state = "chunks"
        self.log.info("snapshot sync: fetching the set after block {height} ({outputs} "
                      "outputs, {chunks} chunks) from {n} peers", height=manifest.height,
                      outputs=manifest.output_count, chunks=len(manifest.chunk_hashes),
                      n=len(self._sources))
        if not manifest.chunk_hashes:
            self._finish()
        else:
            self._pump()

    def _back_to_offers(self):
        self.state = "offers"
        self._current = self._assembly = None
        self._in_flight = {}
        self._first_offer_at = None
        if any(not c.tried and c.peers for c in self._candidates.values()):
            self._choose()

    # -- chunks ----------------------------------------------------------------

    def _pump(self):
        if self.state != "chunks":
            return
        ready = {p.peer_id for p in self._network.peers()}
        self._sources &= ready
        if not self._sources:
            self._back_to_offers()
            return
        load = {peer: 0 for peer in self._sources}
        for peer, _ in self._in_flight.values():
            if peer in load:
                load[peer] += 1
        for index in self._assembly.missing():
            if len(self._in_flight) >= self.max_in_flight:
                break
            if index in self._in_flight:
                continue
            peer = min((p for p in load if load[p] < self.per_peer),
                       key=lambda p: (load[p], p), default=None)
            if peer is None:
                break
            if self._network.send(peer, GetSnapshotChunk(self._assembly.manifest.height, index)):
                self._in_flight[index] = (peer, self._clock.seconds())
                load[peer] += 1

    def _expire(self):
        now = self._clock.seconds()
        for index, (peer, sent) in list(self._in_flight.items()):
            if now - sent >= self.request_timeout:
                del self._in_flight[index]
                self._strikes[peer] = self._strikes.get(peer, 0) + 1
                if self._strikes[peer] >= self.max_strikes:
                    self._sources.discard(peer)

    def _on_chunk(self, peer_id, message):
        if self.state != "chunks":
            return
        sent = self._in_flight.get(message.index)
        if sent is None or sent[0] != peer_id or \
                message.height != self._assembly.manifest.height:
            return  # not asked of this peer: ignored
        del self._in_flight[message.index]
        if not message.data:
            self._ban(peer_id, f"offered the snapshot at {message.height} but does not "
                      f"serve its chunk {message.index}")
        else:
            try:
                self._outputs[message.index] = self._assembly.add(message.index, message.data)
            except SnapshotError as e:
                self.chunks_refused += 1
                self._ban(peer_id, f"snapshot chunk refused: {e}")
        if not self._assembly.missing():
            self._finish()
        else:
            self._pump()

    def _finish(self):
        checked = self._current.checked
        try:
            self._assembly.finish()
            outputs = [o for index in sorted(self._outputs) for o in self._outputs[index]]
            held = {outpoint for outpoint, _, _ in outputs}
            check_registry(checked.registry_rows, checked.proof.header,
                           lambda op: OutPoint(*op) in held)
        except SnapshotError as e:
            for peer in sorted(self._current.peers):
                self._ban(peer, f"its snapshot manifest lied: {e}")
            self._back_to_offers()
            return
        fetched = FetchedSnapshot(checked, outputs, self._assembly.muhash)
        self.state = "installing"
        self.log.info("snapshot sync: the set after block {height} checks against its "
                      "certified header; installing", height=fetched.height)
        d = defer.maybeDeferred(self._installer.install, fetched)
        d.addCallbacks(self._installed, self._install_failed, callbackArgs=(fetched,))

    def _installed(self, _, fetched):
        self.state = "done"
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self.finished.callback(fetched)

    def _install_failed(self, failure):
        self.state = "failed"
        self.log.failure("snapshot sync: installing the snapshot failed", failure)
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self.finished.errback(failure)
