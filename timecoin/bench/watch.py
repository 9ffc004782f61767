"""Watching finality over the wire for ``timecoin bench``.

Instead of asking each node about every outstanding transaction over RPC —
load that would compete with the load being measured — the bench connects to
each node's P2P port as a plain peer (with the library in :mod:`timecoin.p2p`),
subscribes to its finality events and records each decision as it is pushed.
"""

from twisted.internet import defer, task

import timecoin
from timecoin.finality.messages import Subscribe
from timecoin.p2p import ObserverHost, P2PConfig, PeerNetworkService
from timecoin.p2p import messages as m


class FinalityWatcher:
    """Subscribes to the finality events of the nodes at ``addresses``.

    ``on_event(node_index, txid, accepted, reason, finality_ms)`` is called for
    each event; ``node_index`` is the position of the node's address.
    """

    def __init__(self, reactor, network, genesis_hash, addresses, on_event):
        self._reactor = reactor
        self.addresses = list(addresses)
        self._on_event = on_event
        self._subscribed = set()
        config = P2PConfig(user_agent="timecoin-bench", rate_limit_tx=1_000_000)
        self.service = PeerNetworkService(reactor, ObserverHost(network, genesis_hash,
                                                               f"{timecoin.__version__}-bench"),
                                          listen=None, seeds=self.addresses, config=config)
        self.service.register_handler(m.FINALITY_EVENT, self._event)
        self.service.add_ready_listener(self._subscribe)

    def _node_of(self, peer_id):
        peer = self.service.get_peer(peer_id)
        seed = getattr(peer, "seed", None)
        return self.addresses.index(seed) if seed in self.addresses else None

    def _subscribe(self, peer):
        self.service.send(peer.peer_id, Subscribe())
        self._subscribed.add(peer.peer_id)

    def _event(self, peer_id, event):
        node = self._node_of(peer_id)
        if node is not None:
            self._on_event(node, event.txid.hex(), event.accepted, event.reason,
                           event.finality_ms)

    @defer.inlineCallbacks
    def start(self, timeout=30.0):
        """Connect and subscribe to every node; fails after ``timeout`` seconds."""
        self.service.startService()
        deadline = self._reactor.seconds() + timeout
        while len(self._subscribed) < len(self.addresses):
            if self._reactor.seconds() > deadline:
                raise RuntimeError("could not subscribe to every node's finality events")
            yield task.deferLater(self._reactor, 0.05, lambda: None)

    def stop(self):
        return self.service.stopService()
