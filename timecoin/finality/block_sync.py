"""Block sync, the catching-up half of the block service: serving stored
blocks (``getblocks`` -> ``blocks``) and taking certified ones.

:class:`BlockSync` is a base class of
:class:`~timecoin.finality.blocks.BlockService` and uses its state (the
machine, the host, the network, the clock). A block and its commit
certificate for the current height go to the machine's ``on_certificate``,
which verifies the certificate and commits only once the block is valid
here; blocks further ahead are kept and fed as each height commits.

Each entry carries the raw bodies of the block's transactions: once the
certificate verified, the block is checked and applied with them (certified
apply, ``IBlockHost.check_block``'s ``bodies``), so a node that was away needs
no journal below the last block. A reply is paged by bytes
(``MAX_REPLY_BYTES``) as well as by count.
"""

from twisted.internet import defer

from timecoin.consensus.bft_messages import MessageError
from timecoin.consensus.certificate import CommitCertificate
from timecoin.finality.block_messages import (
    MAX_BLOCKS_PER_MESSAGE,
    MAX_REPLY_BYTES,
    Blocks,
    GetBlocks,
    entry_size,
)
from timecoin.ledger.block import Block, BlockError

#: Blocks received ahead of the one being caught up on, kept for later.
MAX_AHEAD = 64
#: A request for blocks unanswered this long may be sent again (seconds).
REQUEST_TIMEOUT_S = 5.0


class BlockSync:
    """Serving and fetching committed blocks (see the module docstring)."""

    def _on_getblocks(self, peer_id, message):
        d = self._serve_blocks(peer_id, message.from_height, message.limit)
        d.addErrback(lambda f: self.log.failure("serving blocks", f))

    @defer.inlineCallbacks
    def _serve_blocks(self, peer_id, from_height, limit):
        """Send ``peer_id`` the blocks from ``from_height``, at most ``limit``
        of them and ``MAX_REPLY_BYTES`` with their bodies."""
        entries, size = [], 0
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
                break
            entries.append(entry)
        if self._network is not None:
            self._network.send(peer_id, Blocks(tuple(entries)))

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

    def _on_blocks(self, peer_id, message):
        if self.machine is None:
            return
        self._asked_at = None
        out = []
        for block_bytes, cert_bytes, bodies in message.entries:
            try:
                block = Block.decode(block_bytes)
                certificate = CommitCertificate.decode(cert_bytes)
            except (BlockError, MessageError):
                return
            if certificate.height != block.height or certificate.block_hash != block.hash:
                return
            if block.height == self.machine.height:
                out += self._take_certified(block, certificate, bodies, peer_id)
            elif block.height > self.machine.height and len(self._ahead) < MAX_AHEAD:
                self._ahead.setdefault(block.height, (block, certificate, bodies, peer_id))
        self._run(out)
        # A page cut by count or by bytes: the peer may hold more (an empty
        # one says it has nothing above).
        if message.entries and len(self._ahead) < MAX_AHEAD:
            self._ask_blocks(peer_id)

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

    # -- asking for blocks -----------------------------------------------------

    def _ask_blocks(self, peer_id):
        """Ask ``peer_id`` for the blocks after the last one held here
        (committed, or kept ahead), unless a request is outstanding."""
        now = self._clock.seconds()
        if self._asked_at is not None and now - self._asked_at < REQUEST_TIMEOUT_S:
            return
        start = max([self._host.height(), *self._ahead]) + 1
        if self._network is not None and self._network.send(
                peer_id, GetBlocks(start, MAX_BLOCKS_PER_MESSAGE)):
            self._asked_at = now

    def _schedule_sync(self):
        self._sync_timer = self._clock.callLater(self.sync_interval, self._sync)

    def _sync(self):
        """Followers ask a peer for new blocks every interval; a validator only
        once it committed nothing for a while (it may have missed a height)."""
        self._sync_timer = None
        if not self.running:
            return
        quiet = self._clock.seconds() - self._last_commit
        if self._network is not None and (not self.is_validator()
                                          or quiet > 3 * self.interval + 10.0):
            peers = sorted(p.peer_id for p in self._network.peers())
            if peers:
                self._ask_rotation = (self._ask_rotation + 1) % len(peers)
                self._ask_blocks(peers[self._ask_rotation])
        self._schedule_sync()
