"""Block sync, the catching-up half of the block service: serving stored
blocks (``getblocks`` -> ``blocks``) and taking certified ones.

:class:`BlockSync` is a base class of
:class:`~timecoin.finality.blocks.BlockService` and uses its state (the
machine, the host, the network, the clock). A block and its commit
certificate for the current height go to the machine's ``on_certificate``,
which verifies the certificate and commits only once the block is valid
here; blocks further ahead are kept and fed as each height commits.
"""

from timecoin.consensus.bft_messages import MessageError
from timecoin.consensus.certificate import CommitCertificate
from timecoin.finality.block_messages import MAX_BLOCKS_PER_MESSAGE, Blocks, GetBlocks
from timecoin.ledger.block import Block, BlockError

#: Blocks received ahead of the one being caught up on, kept for later.
MAX_AHEAD = 64
#: A request for blocks unanswered this long may be sent again (seconds).
REQUEST_TIMEOUT_S = 5.0


class BlockSync:
    """Serving and fetching committed blocks (see the module docstring)."""

    def _on_getblocks(self, peer_id, message):
        entries = []
        top = min(self._host.height(), message.from_height + message.limit - 1)
        for height in range(message.from_height, top + 1):
            block = self._host.block_at(height)
            certificate = self._host.certificate_at(height)
            if block is None or certificate is None:
                break
            entries.append((block.encode(), certificate.encode()))
        self._network.send(peer_id, Blocks(tuple(entries)))

    def _on_blocks(self, peer_id, message):
        if self.machine is None:
            return
        self._asked_at = None
        out = []
        for block_bytes, cert_bytes in message.entries:
            try:
                block = Block.decode(block_bytes)
                certificate = CommitCertificate.decode(cert_bytes)
            except (BlockError, MessageError):
                return
            if certificate.height != block.height or certificate.block_hash != block.hash:
                return
            if block.height == self.machine.height:
                out += self._take_certified(block, certificate)
            elif block.height > self.machine.height and len(self._ahead) < MAX_AHEAD:
                self._ahead.setdefault(block.height, (block, certificate))
        self._run(out)
        # A full page: the peer may hold more (a shorter one was its last).
        if len(message.entries) >= MAX_BLOCKS_PER_MESSAGE and len(self._ahead) < MAX_AHEAD:
            self._ask_blocks(peer_id)

    def _take_certified(self, block, certificate):
        """A block and its certificate for the current height: the machine
        verifies the certificate, and commits once the block is valid here.
        Like a proposed block, it waits for transactions missing here: a node
        that was away gets them from the masternodes' journals
        (``FinalitySync``), decided by its own polls."""
        self._blocks.setdefault(block.hash, block)
        self._note_certificate(block, certificate)
        self.synced += 1
        out = self.machine.on_certificate(certificate, self._clock.seconds())
        if block.hash in self._awaiting:  # asked for before its body was here
            out += self._validate(block.height, block.hash)
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
