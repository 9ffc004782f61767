"""Block sync, the catching-up half of the block service: serving stored
blocks with their bodies (``getblocks`` -> ``blocks``), learning the peers'
tips (``tip``) and fetching certified blocks from several peers at once.

:class:`BlockSync` is a base class of
:class:`~timecoin.finality.blocks.BlockService` and uses its state (the
machine, the host, the network, the clock). Which heights to ask which peer
for is :class:`~timecoin.finality.block_fetcher.BlockFetcher`'s (sans-I/O);
this class carries its requests and checks what comes back:

* every entry of a ``blocks`` reply must decode, its body must match its
  ``tx_root`` (and its transaction bodies its txids, in order) and its
  certificate must be for that block (height and hash), or the sender is
  banned;
* the block for the current height is handed on only if its certificate
  verifies against the active set of that height (the set the blocks before
  it left), else its supplier is banned; blocks further ahead wait for their
  turn (the set may change on the way) and are checked then;
* a certified block that ``check_block`` refuses (bodies that do not apply,
  a header set hash that does not match what applying it gives here) bans
  its supplier too;
* a peer's claimed tip binds it: a reply that stops short of it bans it,
  unless the reply says it was cut at its byte bound (``MAX_REPLY_BYTES``).

Each entry carries the raw bodies of the block's transactions: once the
certificate verified, the block is checked and applied with them (certified
apply, ``IBlockHost.check_block``'s ``bodies``), so a node that was away needs
no journal below the last block.

A banned peer goes through the network's ban path (``IPeerMessaging.ban_peer``)
and its heights go to the others; a slow one is only left out of the schedule.
See doc/blocks.md, "Block sync".
"""

from twisted.internet import defer

from timecoin.consensus.bft_messages import MessageError
from timecoin.consensus.certificate import CertificateError, CommitCertificate, verify_certificate
from timecoin.finality.block_fetcher import BlockFetcher, FetchError
from timecoin.finality.block_messages import MAX_REPLY_BYTES, Blocks, GetBlocks, Tip, entry_size
from timecoin.ledger.block import Block, BlockError
from timecoin.ledger.keys import verify as ed25519_verify


class BlockSync:
    """Serving and fetching committed blocks (see the module docstring)."""

    def _init_sync(self):
        self.fetcher = BlockFetcher()
        self._fed = {}  # block hash -> peer: certified blocks fed from a fetched reply
        self._fetch_timer = None
        self._tip_answered = {}  # peer -> when our tip last answered its
        self._block_peers = set()  # peers a block message came from
        self.peers_banned = 0

    # -- serving ---------------------------------------------------------------

    def _on_getblocks(self, peer_id, message):
        self._block_peers.add(peer_id)
        d = self._serve_blocks(peer_id, message.from_height, message.limit)
        d.addErrback(lambda f: self.log.failure("serving blocks", f))

    @defer.inlineCallbacks
    def _serve_blocks(self, peer_id, from_height, limit):
        """Send ``peer_id`` the blocks from ``from_height``, at most ``limit``
        of them and ``MAX_REPLY_BYTES`` with their bodies."""
        entries, size, cut = [], 0, False
        top = min(self._host.height(), from_height + limit - 1)
        for height in range(from_height, top + 1):
            entry = yield self._certified_entry(height)
            if entry is None:
                break
            size += entry_size(*entry)
            if size > MAX_REPLY_BYTES:
                if not entries:
                    self.log.error("block {height} with its bodies exceeds a blocks reply "
                                   "({bytes} bytes): it cannot be served", height=height,
                                   bytes=entry_size(*entry))
                cut = bool(entries)
                break
            entries.append(entry)
        if self._network is not None:
            self._network.send(peer_id, Blocks(tuple(entries), cut))

    @defer.inlineCallbacks
    def _certified_entry(self, height):
        """``(block, certificate, bodies)`` of committed ``height``, or None."""
        block = self._host.block_at(height)
        certificate = self._host.certificate_at(height)
        if block is None or certificate is None:
            return None
        bodies = yield self._host.block_bodies(height)
        if bodies is None:
            return None
        return (block.encode(), certificate.encode(), tuple(bodies))

    # -- tips ------------------------------------------------------------------

    def _on_tip(self, peer_id, message):
        """A peer's claimed best height; one below ours is answered with ours
        (at most once per sync interval and peer)."""
        if self.machine is None:
            return
        self._block_peers.add(peer_id)
        self.fetcher.note_tip(peer_id, message.height, claimed=True)
        now = self._clock.seconds()
        if message.height < self._host.height() and \
                now - self._tip_answered.get(peer_id, -1e18) >= self.sync_interval:
            self._tip_answered[peer_id] = now
            self._network.send(peer_id, Tip(self._host.height()))
        self._fetch()

    def _note_height(self, peer_id, height):
        """A proposal or vote of ``height``: its sender holds the blocks below
        it (a hint: not binding as a claimed tip is)."""
        self._block_peers.add(peer_id)
        self.fetcher.note_tip(peer_id, height - 1)
        if height - 1 > self._host.height():
            self._fetch()

    def _send_tips(self):
        """Tell our height (those above answer with theirs) to the peers that
        speak the block protocol: the masternodes, and those a block message
        came from (a peer without it, like a wallet or a tool, would take an
        unknown kind for misbehaviour)."""
        tip = Tip(self._host.height())
        present = {p.peer_id for p in self._network.peers()}
        self._block_peers &= present
        for peer_id in sorted(self._block_peers | set(self._network.masternode_peers().values())):
            self._network.send(peer_id, tip)
        if len(self._tip_answered) > 4 * len(present) + 16:
            self._tip_answered.clear()

    # -- replies ---------------------------------------------------------------

    def _on_blocks(self, peer_id, message):
        if self.machine is None:
            return
        decoded = []
        for block_bytes, cert_bytes, bodies in message.entries:
            try:
                block = Block.decode(block_bytes)
                certificate = CommitCertificate.decode(cert_bytes)
                block.check()
            except (BlockError, MessageError) as e:
                return self._ban(peer_id, f"a bad block in a blocks reply: {e}")
            if certificate.height != block.height or certificate.block_hash != block.hash:
                return self._ban(peer_id, f"a certificate for another block than "
                                          f"block {block.height}")
            decoded.append((block.height, (block, certificate, bodies)))
        first = decoded[0][0] if decoded else None
        if self.fetcher.expects(peer_id, first):
            try:
                self.fetcher.on_reply(peer_id, decoded, self._clock.seconds(), message.cut)
            except FetchError as e:
                return self._ban(peer_id, str(e))
            self._run(self._feed())
        elif decoded and first == self.machine.height:
            # Unsolicited: a certificate sent to a validator behind (the
            # machine verifies it).
            self._run(self._take_certified(*decoded[0][1], peer_id=peer_id))
        self._fetch()

    def _feed(self):
        """The fetched block for the current height, if held and not fed yet:
        its certificate checked against this height's active set, then taken."""
        height = self.machine.height
        got = self.fetcher.take(height)
        if got is None:
            return []
        peer_id, (block, certificate, bodies) = got
        if block.hash in self._fed:
            return []
        try:
            verify_certificate(certificate, self.machine.validators, self._tag, ed25519_verify,
                               height=height, block_hash=block.hash)
        except CertificateError as e:
            self.fetcher.reject(height, peer_id)
            self._ban(peer_id, f"block {height}: its certificate does not verify "
                               f"against the active set ({e.reason})")
            return []
        self._fed[block.hash] = peer_id
        return self._take_certified(block, certificate, bodies, peer_id)

    def _take_certified(self, block, certificate, bodies=None, peer_id=None):
        """A block and its certificate for the current height: the machine
        verifies the certificate, and commits once the block is valid here:
        with its ``bodies`` once the certificate verified (certified apply),
        as a proposed block otherwise."""
        self._blocks.setdefault(block.hash, block)
        if bodies is not None:
            self._bodies[block.hash] = (tuple(bodies), peer_id)
        self._note_certificate(block, certificate)
        self.synced += 1
        out = self.machine.on_certificate(certificate, self._clock.seconds())
        if block.hash in self._awaiting or block.hash in self._refused:
            out += self._validate(block.height, block.hash)  # checked before without it
        return out

    def _refused_block(self, block_hash, height, error):
        """``check_block`` refused a block: if it was fetched with a
        certificate, its supplier lied (a certified block is valid)."""
        peer_id = self._fed.pop(block_hash, None)
        if peer_id is not None:
            self.fetcher.reject(height, peer_id)
            self._ban(peer_id, f"block {height} is invalid here: {error}")
            self._fetch()

    def _synced_to(self, height):
        """Block ``height`` was committed: whether the next one is held (then
        the next height starts at once)."""
        self._fed = {}
        self.fetcher.set_height(height)
        return self.fetcher.supplier(height + 1) is not None

    def _ban(self, peer_id, reason):
        self.peers_banned += 1
        self.fetcher.ban(peer_id)
        self.log.warn("banning peer {peer}: {reason}", peer=peer_id, reason=reason)
        if self._network is not None:
            self._network.ban_peer(peer_id, reason)

    # -- asking for blocks -----------------------------------------------------

    def _fetch(self):
        """Send the fetcher's requests, and wake up at its next deadline."""
        if self._network is None or self.machine is None or not self.running:
            return
        present = {p.peer_id for p in self._network.peers()}
        for peer_id in self.fetcher.peers() - present:
            self.fetcher.remove_peer(peer_id)
        self.fetcher.set_height(self._host.height())
        for peer_id, start, count in self.fetcher.requests(self._clock.seconds()):
            if not self._network.send(peer_id, GetBlocks(start, count)):
                self.fetcher.remove_peer(peer_id)
        if self._fetch_timer is not None and self._fetch_timer.active():
            self._fetch_timer.cancel()
        self._fetch_timer = None
        deadline = self.fetcher.next_deadline()
        if deadline is not None:
            delay = max(0.0, deadline - self._clock.seconds())
            self._fetch_timer = self._clock.callLater(delay, self._fetch_tick)

    def _fetch_tick(self):
        self._fetch_timer = None
        if self.running:
            self.fetcher.on_tick(self._clock.seconds())
            self._fetch()

    def _schedule_sync(self):
        self._sync_timer = self._clock.callLater(self.sync_interval, self._sync)

    def _sync(self):
        """Every sync interval: our tip to every peer, and the requests due."""
        self._sync_timer = None
        if not self.running:
            return
        if self._network is not None:
            self._send_tips()
            self._fetch()
        self._schedule_sync()

    def _stop_sync(self):
        if self._fetch_timer is not None and self._fetch_timer.active():
            self._fetch_timer.cancel()
        self._fetch_timer = None
