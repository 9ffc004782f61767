"""The masternode mesh: a connection to every masternode this node can find.

Snowball samples the whole active set and a node that reaches less than
``alpha`` of the active stake does not poll (the eclipse rule), so every node
keeps a link to every masternode it knows an address for, as avalanchego
validators do. Addresses are learned from ``--peer`` seeds, from ``addr``
gossip and from handshakes: a handshake tells which public key answers at an
address (the dialled one for outbound links, the IP and advertised listening
port for inbound ones).

Each tick (every ``mesh_interval`` seconds, and soon after new addresses or a
new masternode link) the mesh dials, at most ``mesh_dials`` at a time:

* addresses known to be a masternode it is not connected to;
* addresses whose owner it does not know yet (a *probe*). A probe that turns
  out to be a plain node is closed again if the node has its
  ``target_outbound`` already, and that address is not probed again.

An address that could not be reached is left alone for ``mesh_retry``
seconds. Links to masternodes do not count against ``max_peers`` and are
never evicted (:mod:`timecoin.p2p.eviction`).
"""

from types import MappingProxyType

from twisted.logger import Logger

from timecoin.p2p.peerstore import join_host_port


class MasternodeMesh:
    """Keeps links to every known masternode for a :class:`PeerNetworkService`.

    ``network`` is the service; ``dial(address)`` starts a one-shot outbound
    connection and returns its Deferred (``Discovery.dial``).
    """

    log = Logger()

    def __init__(self, network, dial):
        self._network = network
        self._dial = dial
        self._owner = {}  # address -> pubkey answering there
        self._dialing = {}  # address -> Deferred
        self._unreachable = {}  # address -> when an attempt failed
        self._masternode_peers = {}  # pubkey -> peer_id of the kept link
        self.masternode_peers = MappingProxyType(self._masternode_peers)
        self._soon = None
        self.dials = 0

    # -- what the service tells the mesh ------------------------------------------
    def ready(self, peer, is_masternode):
        """``peer`` completed its handshake (kept: not a duplicate)."""
        address = self._address_of(peer)
        if address is not None:
            self._owner[address] = peer.pubkey
            self._unreachable.pop(address, None)
        if is_masternode:
            self._masternode_peers[peer.pubkey] = peer.peer_id
            self.soon()  # its addr reply may name more masternodes
        return address

    def identified(self, peer):
        """A handshake told who answers at ``peer``'s address (kept or duplicate)."""
        address = self._address_of(peer)
        if address is not None:
            self._owner[address] = peer.pubkey

    def reclassify(self, peer, is_masternode):
        """The active set changed: ``peer`` (ready, kept) is a masternode or not."""
        if is_masternode:
            self._masternode_peers[peer.pubkey] = peer.peer_id
        elif self._masternode_peers.get(peer.pubkey) == peer.peer_id:
            del self._masternode_peers[peer.pubkey]

    def lost(self, peer):
        if self._masternode_peers.get(peer.pubkey) == peer.peer_id:
            del self._masternode_peers[peer.pubkey]
            self.soon()

    def is_probe_to_drop(self, peer, is_masternode):
        """True for an outbound probe that found a plain node the node does not need."""
        net = self._network
        return (not is_masternode and peer.direction == "outbound" and peer.seed is not None
                and peer.seed not in net.seeds
                and net.plain_outbound() > net.config.target_outbound)

    @staticmethod
    def _address_of(peer):
        if peer.direction == "outbound":
            return peer.seed or peer.label
        if peer.ip and peer.remote is not None and peer.remote.listen_port:
            return join_host_port(peer.ip, peer.remote.listen_port)
        return None

    # -- dialling -------------------------------------------------------------------
    def soon(self):
        """Run a tick on the next reactor turn (once, however often asked)."""
        net = self._network
        if self._soon is None and not net.stopping:
            self._soon = net.reactor.callLater(0, self._tick_soon)

    def _tick_soon(self):
        self._soon = None
        self.tick()

    def stop(self):
        if self._soon is not None and self._soon.active():
            self._soon.cancel()
        self._soon = None

    def wanted(self):
        """Addresses to dial now: known masternodes not connected, then unknown owners."""
        net = self._network
        config = net.config
        now = net.reactor.seconds()
        connected = net.connected_pubkeys()
        busy = (net.connected_addresses() | net.discovery.dialing() | set(self._dialing)
                | net.discovery.self_addresses)
        masternodes, unknown = [], []
        for entry in net.addresses.sample(config.max_known_addresses):
            address = join_host_port(entry.host, entry.port)
            if address in busy or net.bans.is_banned(entry.host):
                continue
            failed_at = self._unreachable.get(address)
            if failed_at is not None and now - failed_at < config.mesh_retry:
                continue
            owner = self._owner.get(address)
            if owner is None:
                unknown.append(address)
            elif owner not in connected and net.host.is_protected_peer(owner):
                masternodes.append(address)
        return masternodes + unknown

    def tick(self):
        net = self._network
        if net.stopping or not net.config.masternode_mesh:
            return
        room = net.config.mesh_dials - len(self._dialing)
        if room <= 0:  # every dial slot is taken: the next one to finish ticks again
            return
        for address in self.wanted()[:room]:
            self.dials += 1
            d = self._dial(address)
            self._dialing[address] = d
            d.addErrback(self._failed, address)
            d.addBoth(self._done, address)

    def _failed(self, failure, address):
        self._unreachable[address] = self._network.reactor.seconds()

    def _done(self, _, address):
        self._dialing.pop(address, None)
        self.soon()
