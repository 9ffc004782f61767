"""Fakes for testing the block service without a node: a host whose blocks are
real ``Block`` objects over a fake ledger, and a mesh of in-memory networks
that deliver every message through the wire codec on a ``Clock``."""

import hashlib
from collections import namedtuple

from twisted.internet import defer
from zope.interface import implementer

from timecoin.interfaces import IBlockHost, IPeer, IPeerMessaging
from timecoin.ledger.block import Block, BlockError, BlockHeader
from timecoin.ledger.checkpoint import CertifiedBodyError, MissingTransactions
from timecoin.ledger.merkle import merkle_root
from timecoin.p2p.messages import decode_message, encode_message


@implementer(IBlockHost)
class FakeBlockHost:
    """A chain of real blocks over a fake ledger: ``validators`` is the active
    set (``{pubkey: weight}``); ``txids`` what the next block holds; ``missing``
    txids this node does not have yet (blocks naming them wait); ``invalid``
    block hashes it refuses; ``bodies`` maps txids to the raw transactions it
    serves with its blocks; ``lying_bodies`` block hashes whose bodies do not
    verify here. With bodies (a certified block), missing txids do not make a
    block wait. ``committed`` lists ``(block, certificate)``, ``committed_bodies``
    the bodies each came with (None: none)."""

    def __init__(self, network_id, validators):
        self.network_id = network_id
        self._validators = dict(validators)
        self.txids = ()
        self.missing = set()
        self.invalid = set()
        self.refused_proposers = set()
        self.committed = []
        self.committed_bodies = []
        self.bodies = {}
        self.lying_bodies = set()
        self.loads = 0

    def load(self):
        self.loads += 1
        return defer.succeed(None)

    def height(self):
        return len(self.committed)

    def block_at(self, height):
        return self.committed[height - 1][0] if 1 <= height <= len(self.committed) else None

    def certificate_at(self, height):
        return self.committed[height - 1][1] if 1 <= height <= len(self.committed) else None

    def validators(self):
        return dict(self._validators)

    def validators_at(self, height):
        """The set never changes here: ``validators`` at every known height."""
        return dict(self._validators) if 0 <= height <= self.height() else None

    def block_bodies(self, height):
        block = self.block_at(height)
        if block is None or any(t not in self.bodies for t in block.txids):
            return defer.succeed(None)
        return defer.succeed(tuple(self.bodies[t] for t in block.txids))

    def _prev_hash(self):
        return self.committed[-1][0].hash if self.committed else b"\0" * 32

    def _set_after(self, deactivated):
        after = {pk: w for pk, w in self._validators.items() if pk not in deactivated}
        return hashlib.blake2b(repr(sorted(after.items())).encode(), digest_size=32).digest()

    def build_block(self, round_, proposer, now, deactivations=()):
        height = self.height() + 1
        deactivated = tuple(sorted({pk for pk in deactivations if pk in self._validators}))
        header = BlockHeader(self.network_id, height, self._prev_hash(), int(now), round_,
                             proposer, merkle_root(tuple(self.txids)), b"\1" * 32,
                             self._set_after(deactivated), 0, deactivated)
        return Block(header, tuple(self.txids))

    def check_block(self, block, proposer_of, now, justified=None, bodies=None):
        if block.height != self.height() + 1 or block.header.prev_hash != self._prev_hash():
            raise BlockError("does not follow")
        if block.header.proposer != proposer_of(block.header.round):
            raise BlockError("wrong proposer")
        if block.hash in self.invalid or block.header.proposer in self.refused_proposers:
            raise BlockError("refused by the test")
        deactivated = block.header.deactivated
        if list(deactivated) != sorted(set(deactivated)):
            raise BlockError("deactivations not distinct and sorted")
        for pubkey in deactivated:
            if pubkey not in self._validators or justified is None or not justified(pubkey):
                raise BlockError("unjustified deactivation")
        if block.header.masternode_set_hash != self._set_after(deactivated):
            raise BlockError("wrong set hash")
        block.check()
        if bodies is not None:
            if block.hash in self.lying_bodies or len(bodies) != len(block.txids):
                raise CertifiedBodyError("bodies refused by the test")
            return
        missing = [t for t in block.txids if t in self.missing]
        if missing:
            raise MissingTransactions(missing)

    def commit_block(self, block, certificate, bodies=None):
        if block.height != self.height() + 1:
            raise BlockError(f"block {block.height} committed at height {self.height()}")
        self.committed.append((block, certificate))
        self.committed_bodies.append(bodies)
        for pubkey in block.header.deactivated:
            self._validators.pop(pubkey, None)
        return defer.succeed(None)


@implementer(IPeer)
class MeshPeer(namedtuple("MeshPeer", "peer_id pubkey")):
    """A ready peer of a :class:`MeshEndpoint`."""


@implementer(IPeerMessaging)
class MeshEndpoint:
    """One node's view of a :class:`Mesh`: its peers are the other endpoints
    that are up; ``masternodes`` are the public keys counted as masternodes."""

    def __init__(self, mesh, index, pubkey):
        self._mesh = mesh
        self.index = index
        self.pubkey = pubkey
        self.handlers = {}
        self.sent = []  # (peer index, message)

    def register_handler(self, kind, callback):
        self.handlers[kind] = callback

    def send(self, peer_id, message):
        return self._mesh.send(self.index, peer_id - 1, message)

    def peers(self):
        return [MeshPeer(j + 1, self._mesh.endpoints[j].pubkey)
                for j in self._mesh.links_of(self.index)]

    def get_peer(self, peer_id):
        return next((p for p in self.peers() if p.peer_id == peer_id), None)

    def masternode_peers(self):
        return {p.pubkey: p.peer_id for p in self.peers() if p.pubkey in self._mesh.masternodes}

    def ban_peer(self, peer_id, reason):
        """Cut the link to ``peer_id`` for good (recorded in ``mesh.bans``)."""
        if self.get_peer(peer_id) is None:
            return False
        self._mesh.bans.append((self.index, peer_id - 1, reason))
        self._mesh.cut.add(frozenset((self.index, peer_id - 1)))
        return True


class Mesh:
    """Endpoints fully connected on ``clock``; every message is encoded and
    decoded and delivered ``delay`` seconds later. ``down`` holds indices of
    crashed nodes (nothing to or from them); ``filter(src, dst, message)``
    returning False drops a message; ``bans`` lists ``(index, banned index,
    reason)`` and ``cut`` the links bans closed (pairs of indices)."""

    def __init__(self, clock, pubkeys, masternodes=None, delay=0.01):
        self.clock = clock
        self.delay = delay
        self.endpoints = [MeshEndpoint(self, i, pk) for i, pk in enumerate(pubkeys)]
        self.masternodes = set(pubkeys if masternodes is None else masternodes)
        self.down = set()
        self.cut = set()
        self.bans = []
        self.filter = None
        self.delivered = 0

    def links_of(self, index):
        if index in self.down:
            return []
        return [j for j in range(len(self.endpoints)) if j != index and j not in self.down
                and frozenset((index, j)) not in self.cut]

    def send(self, src, dst, message):
        if src in self.down or dst in self.down or not 0 <= dst < len(self.endpoints) \
                or frozenset((src, dst)) in self.cut:
            return False
        self.endpoints[src].sent.append((dst, message))
        if self.filter is not None and not self.filter(src, dst, message):
            return True
        data = encode_message(message)
        self.clock.callLater(self.delay, self._deliver, src, dst, data)
        return True

    def _deliver(self, src, dst, data):
        if src in self.down or dst in self.down or frozenset((src, dst)) in self.cut:
            return
        message = decode_message(data)
        handler = self.endpoints[dst].handlers.get(message.KIND)
        if handler is not None:
            self.delivered += 1
            handler(src + 1, message)
