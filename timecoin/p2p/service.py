"""The connection manager: listening, seed connections, limits, bans, relay."""

from collections import Counter, defaultdict, namedtuple

from twisted.application import service
from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet import defer
from twisted.internet.endpoints import HostnameEndpoint, serverFromString, wrapClientTLS
from twisted.internet.protocol import Factory
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer

from timecoin.interfaces import IPeer, IPeerNetwork, IPeerPolicing
from timecoin.p2p import messages as m
from timecoin.p2p.bans import BanList
from timecoin.p2p.config import P2PConfig
from timecoin.p2p.discovery import Discovery
from timecoin.p2p.eviction import Candidate, Evictor, network_group
from timecoin.p2p.handshake import Ready
from timecoin.p2p.mesh import MasternodeMesh
from timecoin.p2p.peerstore import PeerStore, join_host_port, split_host_port
from timecoin.p2p.protocol import PeerProtocol
from timecoin.p2p.relay import TxRelay
from timecoin.p2p.sendbuffer import SendAccount
from timecoin.p2p.stats import peer_statistics
from timecoin.p2p.tls import request_client_certificates
from timecoin.p2p.traffic import PeerTraffic

_NETWORK_KINDS = frozenset({m.INV, m.GETDATA, m.TX, m.GETADDR, m.ADDR})


@implementer(IPeer)
class PeerSummary(namedtuple("PeerSummary", "peer_id pubkey address direction")):
    """A ready peer as :meth:`PeerNetworkService.peers` lists it."""

    __slots__ = ()


class PeerFactory(Factory):
    """Builds :class:`PeerProtocol` connections for the service (or refuses them)."""

    def __init__(self, network, direction, seed=None):
        self.network = network
        self.direction = direction
        self.seed = seed

    def buildProtocol(self, addr):
        return self.network.build_peer(self.direction, addr, self.seed)


@implementer(IPeerNetwork, IPeerPolicing)
class PeerNetworkService(service.Service):
    """The peer-to-peer network of one node (provides ``IPeerNetwork``).

    ``reactor`` provides ``IReactorTCP``/``IReactorTime`` (all timers and
    connections go through it); ``host`` provides
    :class:`~timecoin.p2p.host.IPeerHost`; ``listen`` is a ``serverFromString``
    description (or None for no inbound connections); ``seeds`` are
    ``HOST:PORT`` peers kept connected with backoff; ``client_tls`` are the
    TLS options of outbound connections (see :mod:`timecoin.p2p.tls`), or
    None for plain TCP. :attr:`started` fires with the listening port once the
    bans and addresses are loaded and the port is listening.
    """

    name = "p2p"
    log = Logger()

    def __init__(self, reactor, host, listen=None, seeds=(), config=None, client_tls=None):
        self.reactor = reactor
        self.host = host
        self.config = config or P2PConfig()
        self.listen_description = listen
        self.seeds = list(seeds)
        for seed in self.seeds:
            split_host_port(seed)
        self.client_tls = client_tls
        self.listening_port = None
        self.started = None
        self.bans = BanList(reactor, host.run_db, self.config.ban_base, self.config.ban_max)
        self.addresses = PeerStore(reactor, host.run_db, self.config.max_known_addresses)
        self.send_account = SendAccount(self.config.max_total_send_buffer)
        self.traffic = PeerTraffic()
        self.relay = TxRelay(host, reactor, self.config, self.send_account)
        self.evictor = Evictor(self.config)
        self._inbound_per_group = Counter()
        self._connections = {}
        self._ready = {}  # pubkey -> PeerProtocol
        self._direction_counts = Counter()
        self._inbound_per_ip = Counter()
        self._handlers = defaultdict(list)  # kind -> callbacks of register_handler
        #: The state of every ready connection: its table routes their messages.
        self.ready_state = Ready()
        self._add_network_handlers()
        self._ready_listeners = []
        self._seed_services = {}
        self.discovery = Discovery(self, lambda address: PeerFactory(self, "outbound", address))
        self.mesh = MasternodeMesh(self, self.discovery.dial)
        self._mesh_loop = None
        self._stopping = False

    # -- service life -----------------------------------------------------------
    def startService(self):
        service.Service.startService(self)
        self._stopping = False
        d = defer.gatherResults([self.bans.load(), self.addresses.load()], consumeErrors=True)
        d.addCallback(lambda _: self._listen())
        d.addCallback(self._start_seeds)
        self.started = d
        return d

    def _listen(self):
        if not self.listen_description or self._stopping:
            return None
        endpoint = serverFromString(self.reactor, self.listen_description)
        endpoint = request_client_certificates(endpoint)
        d = endpoint.listen(PeerFactory(self, "inbound"))

        def listening(port):
            self.listening_port = port
            self.log.info("peer network listening on {address}", address=port.getHost())
            return port

        return d.addCallback(listening)

    def _start_seeds(self, port):
        for seed in self.seeds:
            self.connect(seed)
        if not self._stopping and self.config.target_outbound > 0:
            self.discovery.start(self.config.discovery_interval)
        if not self._stopping and self.config.masternode_mesh:
            self._mesh_loop = LoopingCall(self.mesh.tick)
            self._mesh_loop.clock = self.reactor
            self._mesh_loop.start(self.config.mesh_interval, now=True)
        return port

    @property
    def stopping(self):
        return self._stopping

    def connected_addresses(self):
        """``HOST:PORT`` of the peers connected or kept up (seeds), as dialled."""
        labels = {p.seed for p in self._connections.values() if p.seed}
        return labels | set(self._seed_services)

    def connect(self, address):
        """Keep an outbound connection to ``HOST:PORT`` (reconnecting with backoff)."""
        if address in self._seed_services or self._stopping:
            return
        host, port = split_host_port(address)
        endpoint = HostnameEndpoint(self.reactor, host, port)
        if self.client_tls is not None:
            endpoint = wrapClientTLS(self.client_tls, endpoint)
        policy = backoffPolicy(self.config.reconnect_initial, self.config.reconnect_max)
        client = ClientService(endpoint, PeerFactory(self, "outbound", address),
                               retryPolicy=policy, clock=self.reactor)
        self._seed_services[address] = client
        self.addresses.add([(address, self.reactor.seconds())])
        client.startService()

    def stopService(self):
        service.Service.stopService(self)
        self._stopping = True
        self.discovery.stop()
        self.mesh.stop()
        if self._mesh_loop is not None and self._mesh_loop.running:
            self._mesh_loop.stop()
        waits = [client.stopService() for client in self._seed_services.values()]
        self._seed_services.clear()
        if self.listening_port is not None:
            waits.append(defer.maybeDeferred(self.listening_port.stopListening))
            self.listening_port = None
        for peer in list(self._connections.values()):
            waits.append(peer.when_lost())
            peer.drop("shutting down")
        return defer.gatherResults(waits, consumeErrors=True).addCallback(lambda _: None)

    def listen_port(self):
        """The port this node listens on (0 if none); peers learn it from our hello."""
        if self.listening_port is None:
            return 0
        return self.listening_port.getHost().port

    # -- connections (called by PeerFactory and PeerProtocol) ----------------------
    def build_peer(self, direction, addr, seed=None):
        if self._stopping:
            return None
        ip = getattr(addr, "host", None)
        if ip is not None and self.bans.is_banned(ip):
            self.log.info("refusing banned address {ip}", ip=ip)
            return None
        if direction == "inbound" and not self._inbound_slot(ip):
            return None
        peer = PeerProtocol(self.host, self, self.reactor, self.config, direction, addr)
        peer.seed = seed
        return peer

    def _inbound_slot(self, ip):
        """True if an inbound connection from ``ip`` may be accepted, evicting
        another if every slot is taken (see :mod:`timecoin.p2p.eviction`)."""
        config = self.config
        if self._inbound_per_ip[ip] >= config.max_per_ip:
            self.log.info("refusing {ip}: too many connections from it", ip=ip)
            self.send_account.disconnects["refused per-ip limit"] += 1
            return False
        if self._inbound_per_group[network_group(ip)] >= config.max_inbound_per_group:
            self.log.info("refusing {ip}: too many connections from its network group", ip=ip)
            self.send_account.disconnects["refused per-group limit"] += 1
            return False
        # Links to masternodes do not count: they are kept whatever the limit.
        open_now = sum(1 for p in self._connections.values()
                       if not p.closing and not self._is_masternode(p))
        if open_now < config.max_peers:
            return True
        candidates = [
            Candidate(p.peer_id, network_group(p.ip), p.connected_at, p.is_ready,
                      p.ping_ms, p.last_useful)
            for p in self._connections.values()
            if p.direction == "inbound" and not p.closing
            and not (p.pubkey is not None and self.host.is_protected_peer(p.pubkey))]
        victim = self.evictor.select(candidates)
        if victim is None:
            self.log.info("refusing {ip}: {n} peers already, none to evict", ip=ip, n=open_now)
            self.send_account.disconnects["refused full"] += 1
            return False
        self._connections[victim].drop("evicted")
        return True

    def _is_masternode(self, peer):
        return peer.pubkey is not None and self.host.is_protected_peer(peer.pubkey)

    def plain_outbound(self):
        """Outbound connections that are not links to masternodes."""
        return sum(1 for p in self._connections.values()
                   if p.direction == "outbound" and not p.closing and not self._is_masternode(p))

    def connected_pubkeys(self):
        """Public keys of the ready peers."""
        return set(self._ready)

    def peer_connected(self, peer):
        self._connections[peer.peer_id] = peer
        self._direction_counts[peer.direction] += 1
        self.traffic.opened[peer.direction] += 1
        if peer.direction == "inbound":
            self._inbound_per_ip[peer.ip] += 1
            self._inbound_per_group[network_group(peer.ip)] += 1

    def peer_lost(self, peer):
        if self._connections.pop(peer.peer_id, None) is None:
            return
        self._direction_counts[peer.direction] -= 1
        self.traffic.closed[peer.direction] += 1
        if peer.direction == "inbound":
            self._inbound_per_ip[peer.ip] -= 1
            if not self._inbound_per_ip[peer.ip]:
                del self._inbound_per_ip[peer.ip]
            group = network_group(peer.ip)
            self._inbound_per_group[group] -= 1
            if not self._inbound_per_group[group]:
                del self._inbound_per_group[group]
        if peer.pubkey is not None and self._ready.get(peer.pubkey) is peer:
            del self._ready[peer.pubkey]
            self.mesh.lost(peer)

    def _initiator(self, peer):
        return self.host.identity.pubkey if peer.direction == "outbound" else peer.pubkey

    def peer_ready(self, peer):
        """A handshake completed; False if ``peer`` duplicates a kept connection.

        Of two connections between the same nodes both sides keep the one
        opened by the node with the smaller public key.
        """
        self.mesh.identified(peer)
        existing = self._ready.get(peer.pubkey)
        if existing is not None:
            if self._initiator(peer) >= self._initiator(existing):
                return False
            existing.refuse("duplicate-connection", "already connected to this node")
        self._ready[peer.pubkey] = peer
        is_masternode = self.host.is_protected_peer(peer.pubkey)
        self.mesh.ready(peer, is_masternode)
        if self.mesh.is_probe_to_drop(peer, is_masternode):
            self.reactor.callLater(0, peer.drop, "not a masternode")
        if peer.direction == "outbound":
            self.addresses.connected(peer.seed or peer.label)
            peer.send(m.GetAddr())
        elif peer.remote.listen_port and peer.ip:
            address = join_host_port(peer.ip, peer.remote.listen_port)
            self.addresses.add([(address, self.reactor.seconds())])
        return True

    def announce_ready(self, peer):
        """Tell the ready-listeners about a peer that completed its handshake."""
        summary = PeerSummary(peer.peer_id, peer.pubkey, peer.label, peer.direction)
        for callback in list(self._ready_listeners):
            callback(summary)

    def ban_peer(self, peer_id, reason):
        """``IPeerPolicing`` and ``IPeerMessaging``: close ``peer_id`` as
        misbehaving and ban its address for ``reason``; False if no such peer."""
        peer = self._connections.get(peer_id)
        if peer is None:
            return False
        peer.misbehave(reason)
        return True

    def peer_misbehaved(self, peer, reason):
        if peer.ip is not None:
            self.bans.ban(peer.ip, reason)

    def peer_refused(self, peer, code):
        if code == "self-connection" and peer.seed:
            self.discovery.self_addresses.add(peer.seed)
        if code == "self-connection" and peer.seed in self._seed_services:
            self.log.info("{seed} is this node itself: not connecting again", seed=peer.seed)
            self._seed_services.pop(peer.seed).stopService()

    def _add_network_handlers(self):
        """The ready state's entries for the kinds the network itself handles."""
        relay = self.relay
        for kind, handle in (
                (m.INV, lambda peer, message: relay.on_inv(peer, message.txids)),
                (m.GETDATA, lambda peer, message: relay.on_getdata(peer, message.txids)),
                (m.TX, lambda peer, message: relay.on_tx(peer, message.raw)),
                (m.GETADDR, lambda peer, message: self._answer_getaddr(peer)),
                (m.ADDR, lambda peer, message: self._learn_addresses(peer, message.addresses))):
            self.ready_state.add_handler(kind, self._then_listeners(handle))

    def _then_listeners(self, handle):
        def handle_then_notify(peer, message):
            handle(peer, message)
            self._notify_listeners(peer, message)
        return handle_then_notify

    def _notify_listeners(self, peer, message):
        if message.KIND not in _NETWORK_KINDS:
            peer.mark_useful()  # a finality message
        for handler in self._handlers.get(message.KIND, ()):
            handler(peer.peer_id, message)

    def _answer_getaddr(self, peer):
        if peer.addr_sent:
            return
        peer.addr_sent = True
        entries = self.addresses.sample(self.config.addr_reply_size, exclude={peer.label})
        peer.send(m.Addr(tuple(entries)))

    def _learn_addresses(self, peer, entries):
        now = self.reactor.seconds()
        learned = [(join_host_port(e.host, e.port), min(float(e.last_seen), now))
                   for e in entries[:self.config.addr_reply_size]
                   if e.port and e.host and not self.bans.is_banned(e.host)]
        self.addresses.add(learned)
        if learned:
            self.mesh.soon()

    # -- IPeerNetwork -----------------------------------------------------------
    def broadcast_tx(self, tx, push=False):
        """Announce ``tx`` (a Transaction) to every ready peer not known to have it;
        with ``push``, send small transactions whole instead of by txid."""
        return self.relay.broadcast(tx, list(self._ready.values()), push)

    def peer_info(self):
        return [peer.info() for peer in self._ready.values()]

    def peer_count(self):
        return len(self._ready)

    def statistics(self):
        """The peer limits' metrics: ``(name, kind, doc, [(labels, value)])`` tuples."""
        return peer_statistics(self)

    def connection_counts(self):
        """``{"inbound": n, "outbound": n}`` of open connections, handshaken or not."""
        return {"inbound": self._direction_counts["inbound"],
                "outbound": self._direction_counts["outbound"]}

    # -- for other components (Snowball, blocks) ----------------------------------
    def add_ready_listener(self, callback):
        """Call ``callback(PeerSummary)`` each time a peer completes its handshake."""
        self._ready_listeners.append(callback)

    def register_handler(self, kind, callback):
        """Call ``callback(peer_id, message)`` for every message of ``kind`` from a ready peer."""
        self._handlers[kind].append(callback)
        if kind not in self.ready_state.handlers:
            self.ready_state.add_handler(kind, self._notify_listeners)

    def send(self, peer_id, message):
        """Send ``message`` to a ready peer; False if there is no such peer."""
        peer = self._connections.get(peer_id)
        if peer is None or not peer.state.ready:
            return False
        return peer.send(message)

    def masternode_peers(self):
        """``{pubkey: peer_id}`` of the ready links to masternodes: a read-only
        view kept up to date on connect and disconnect, and when a block changes
        the active set (:meth:`masternodes_changed`; O(1) to get)."""
        return self.mesh.masternode_peers

    def masternodes_changed(self):
        for peer in list(self._ready.values()):
            self.mesh.reclassify(peer, self.host.is_protected_peer(peer.pubkey))

    def peers(self):
        """The ready peers, as :data:`PeerSummary` tuples."""
        return [PeerSummary(p.peer_id, p.pubkey, p.label, p.direction)
                for p in self._ready.values()]

    def connections(self):
        """Every open :class:`PeerProtocol`, handshaken or not."""
        return list(self._connections.values())

    def get_peer(self, peer_id):
        """The :class:`PeerProtocol` of ``peer_id`` (ready or not), or None."""
        return self._connections.get(peer_id)

    # -- bans (RPC) -------------------------------------------------------------
    def list_banned(self):
        """Current bans: dicts of address, banned_until, time_remaining, offences, reason."""
        return self.bans.active()

    def set_ban(self, address, seconds=None, remove=False):
        """Ban ``address`` (an IP) for ``seconds`` (default: by offences), or lift it.

        Connections from a newly banned address are closed. Returns a Deferred.
        """
        if remove:
            return self.bans.unban(address)
        d = self.bans.ban(address, "banned by the operator", seconds)
        for peer in list(self._connections.values()):
            if peer.ip == address:
                peer.drop("address banned")
        return d

    def clear_banned(self):
        """Lift every ban (a Deferred)."""
        return self.bans.clear()
