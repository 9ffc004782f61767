"""Fakes for testing snapshot sync without a node: a hub of endpoints that
carry encoded messages on a clock, with bans, and a snapshot source."""

from collections import namedtuple

from twisted.internet import defer
from zope.interface import implementer

from timecoin.interfaces import IPeer, IPeerMessaging, IPeerPolicing, ISnapshotSource
from timecoin.p2p.messages import decode_message, encode_message


@implementer(IPeer)
class HubPeer(namedtuple("HubPeer", "peer_id pubkey")):
    """A ready peer of a :class:`SnapshotHub` endpoint."""


@implementer(IPeerMessaging, IPeerPolicing)
class HubEndpoint:
    """One node's view of the hub: messages to the others, encoded and
    decoded on the way, delivered ``delay`` seconds later on the hub's clock."""

    def __init__(self, hub, node_id):
        self._hub = hub
        self.node_id = node_id
        self._handlers = {}
        self.banned = {}  # peer_id -> reason

    def register_handler(self, kind, callback):
        self._handlers.setdefault(kind, []).append(callback)

    def peers(self):
        return [HubPeer(n, bytes([n]) * 32) for n in sorted(self._hub.endpoints)
                if n != self.node_id and self._hub.linked(self.node_id, n)]

    def get_peer(self, peer_id):
        return next((p for p in self.peers() if p.peer_id == peer_id), None)

    def masternode_peers(self):
        return {}

    def send(self, peer_id, message):
        if self.get_peer(peer_id) is None:
            return False
        self._hub.carry(self.node_id, peer_id, encode_message(message))
        return True

    def ban_peer(self, peer_id, reason):
        if self.get_peer(peer_id) is None:
            return False
        self.banned[peer_id] = reason
        self._hub.cut(self.node_id, peer_id)
        return True

    def deliver(self, from_id, data):
        message = decode_message(data)
        for callback in self._handlers.get(message.KIND, []):
            callback(from_id, message)


class SnapshotHub:
    """Endpoints linked all to all; a ban cuts a link both ways."""

    def __init__(self, clock, delay=0.01):
        self.clock = clock
        self.delay = delay
        self.endpoints = {}
        self._cut = set()
        #: Messages carried, as ``(from, to, kind)``.
        self.carried = []

    def endpoint(self, node_id):
        self.endpoints[node_id] = endpoint = HubEndpoint(self, node_id)
        return endpoint

    def linked(self, a, b):
        return frozenset((a, b)) not in self._cut

    def cut(self, a, b):
        self._cut.add(frozenset((a, b)))

    def carry(self, src, dst, data):
        message = decode_message(data)
        self.carried.append((src, dst, message.KIND))

        def arrive():
            if self.linked(src, dst):
                self.endpoints[dst].deliver(src, data)
        self.clock.callLater(self.delay, arrive)


@implementer(ISnapshotSource)
class FixedSnapshotSource:
    """Serves one offer (``(manifest, registry, proof, block)`` bytes, or
    None) and the chunks in ``chunks`` (``{(height, index): bytes}``)."""

    def __init__(self, offer, chunks):
        self.offer = offer
        self.chunks = dict(chunks)
        self.reads = 0

    def newest_offer(self):
        return defer.succeed(self.offer)

    def chunk(self, height, index):
        self.reads += 1
        return defer.succeed(self.chunks.get((height, index)))
