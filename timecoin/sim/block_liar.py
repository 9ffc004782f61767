"""A byzantine block server: a node's ``blocks`` replies altered on their way out.

:class:`LyingBlockServer` stands between a node's block service and its
network (an ``IPeerMessaging`` wrapping another): every ``blocks`` message the
service sends to a peer whose public key is in ``victims`` goes through
``lie(entries)`` first; everything else passes unchanged. The node itself
runs honestly, so only what it serves those peers lies.
"""

import dataclasses

from zope.interface import implementer

from timecoin.consensus.certificate import CommitCertificate
from timecoin.finality.block_messages import Blocks
from timecoin.interfaces import IPeerMessaging


def short_certificates(entries):
    """``lie`` for :class:`LyingBlockServer`: every certificate keeps only its
    first signature (far short of 2/3); the blocks and the rest stay."""
    out = []
    for entry in entries:
        certificate = CommitCertificate.decode(entry[1])
        short = dataclasses.replace(certificate, signatures=certificate.signatures[:1])
        out.append((entry[0], short.encode(), *entry[2:]))
    return tuple(out)


@implementer(IPeerMessaging)
class LyingBlockServer:
    """``network`` as the block service sees it, with ``blocks`` replies to
    ``victims`` (public keys) rewritten by ``lie`` (see the module docstring)."""

    def __init__(self, network, victims, lie=short_certificates):
        self._network = network
        self.victims = set(victims)
        self._lie = lie
        self.lies = 0

    def register_handler(self, kind, callback):
        return self._network.register_handler(kind, callback)

    def send(self, peer_id, message):
        peer = self._network.get_peer(peer_id)
        if isinstance(message, Blocks) and message.entries and peer is not None \
                and peer.pubkey in self.victims:
            self.lies += 1
            message = Blocks(self._lie(message.entries), message.cut)
        return self._network.send(peer_id, message)

    def peers(self):
        return self._network.peers()

    def get_peer(self, peer_id):
        return self._network.get_peer(peer_id)

    def masternode_peers(self):
        return self._network.masternode_peers()

    def ban_peer(self, peer_id, reason):
        return self._network.ban_peer(peer_id, reason)
