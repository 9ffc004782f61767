"""Simulated links between nodes: whole frames, seeded latency, loss, partitions.

Every node gets a :class:`~timecoin.sim.hosts.HostReactor` (its own IP
address, the shared clock). A connection is a pair of :class:`SimTransport`;
what one side writes is cut into the Int32 length-prefixed frames of
:mod:`timecoin.p2p.framing`, and each frame is delivered whole to the other
side after the link's latency, or dropped. So loss drops whole messages (a
simulated message network, not a byte stream), a partition drops everything
between groups (also frames already in flight), and healing restores it.

Link conditions per direction (:class:`LinkConditions`):

* ``latency``: seconds every frame takes;
* ``jitter``: up to this many seconds more, uniformly at random;
* ``loss``: the probability that a frame is dropped;
* ``reorder``: if False (the default) frames keep their order on a link, as
  on TCP; if True each frame takes its own jittered delay, so a later frame
  may overtake an earlier one.

Connection set-up and close notifications take the latency but are never
lost (only a partition stops them), and neither are the first
:data:`HANDSHAKE_FRAMES` frames each side sends on a connection (its hello and
auth), unless the link is dead (``loss=1.0``, which loses everything): the
model is a reliable connection, set up whole or not at all, whose
messages may then be lost, not a lossy packet network. (A real TCP
connection cannot deliver an auth without the hello before it; a simulated
loss that did would have the receiver ban an honest peer for it.) All randomness comes from
one RNG per direction of a link, seeded from the network's seed and the two
addresses, so a link's fate does not depend on the order links are first used.
"""

import random
from dataclasses import dataclass, replace

from twisted.internet import error
from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import ITransport
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

_HEADER_SIZE = 4
#: Frames each side of a connection sends before loss applies (hello, auth).
HANDSHAKE_FRAMES = 2


@dataclass(frozen=True)
class LinkConditions:
    """How one direction of a link treats frames (see the module docstring)."""

    latency: float = 0.01
    jitter: float = 0.0
    loss: float = 0.0
    reorder: bool = False

    def __post_init__(self):
        if self.latency < 0 or self.jitter < 0:
            raise ValueError("latency and jitter must not be negative")
        if not 0.0 <= self.loss <= 1.0:
            raise ValueError("loss is a probability from 0 to 1")


class FrameFilter:
    """Base of the hooks that see (and may rewrite) a node's frames.

    ``incoming(transport, payload)`` is called before a frame is handed to
    the node, ``outgoing(transport, payload)`` before a frame it wrote is put
    on the link; each returns the payload to use, or None to drop the frame.
    ``transport`` is the node's own :class:`SimTransport` of the connection.
    """

    def incoming(self, transport, payload):
        return payload

    def outgoing(self, transport, payload):
        return payload


class SimNetwork:
    """The links between the simulated hosts, with their conditions and partitions.

    ``clock`` is the shared :class:`~timecoin.sim.clock.SimClock`; ``seed``
    seeds every link's RNG. ``conditions`` apply to every link not given its
    own with :meth:`set_link`.
    """

    log = Logger()

    def __init__(self, clock, seed=0, conditions=None):
        self.clock = clock
        self._seed = seed
        self.conditions = conditions or LinkConditions()
        self._links = {}  # (src ip, dst ip) -> LinkConditions
        self._rngs = {}
        self._group_of = None  # ip -> partition group, while partitioned
        self.listeners = {}  # (ip, port) -> factory
        self.filters = {}  # ip -> FrameFilter
        self.connections = []  # open SimConnection
        self.frames_sent = self.frames_delivered = self.frames_dropped = 0

    # -- conditions ------------------------------------------------------------
    def set_link(self, a, b, both_ways=True, **changes):
        """Change the conditions of the link from ``a`` to ``b`` (IP addresses)."""
        pairs = [(a, b), (b, a)] if both_ways else [(a, b)]
        for pair in pairs:
            self._links[pair] = replace(self._links.get(pair, self.conditions), **changes)

    def set_all(self, **changes):
        """Change the conditions of every link (the per-link ones too)."""
        self.conditions = replace(self.conditions, **changes)
        for pair, conditions in self._links.items():
            self._links[pair] = replace(conditions, **changes)

    def reset_links(self):
        """Forget the per-link conditions: every link has the default ones."""
        self._links.clear()

    def link(self, src, dst):
        """The conditions of the direction ``src`` -> ``dst``."""
        return self._links.get((src, dst), self.conditions)

    def partition(self, *groups):
        """Cut every link between different groups (iterables of IPs); hosts in
        no group form one more group."""
        group_of = {}
        for n, group in enumerate(groups):
            for ip in group:
                group_of[ip] = n
        self._group_of = group_of

    def heal(self):
        """End the partition: every link carries frames again."""
        self._group_of = None

    def blocked(self, src, dst):
        """True while a partition separates ``src`` and ``dst``."""
        group_of = self._group_of
        if group_of is None:
            return False
        return group_of.get(src, -1) != group_of.get(dst, -1)

    def _rng(self, src, dst):
        rng = self._rngs.get((src, dst))
        if rng is None:
            rng = self._rngs[(src, dst)] = random.Random(f"{self._seed}:{src}>{dst}")
        return rng

    def frame_delay(self, src, dst, lossless=False):
        """Seconds until a frame sent now arrives, or None if it is lost
        (``lossless``: a handshake frame, only a partition or a dead link,
        ``loss=1.0``, stops it)."""
        if self.blocked(src, dst):
            return None
        conditions = self.link(src, dst)
        rng = self._rng(src, dst)
        if (conditions.loss and rng.random() < conditions.loss
                and (not lossless or conditions.loss >= 1.0)):
            return None
        if conditions.jitter:
            return conditions.latency + rng.uniform(0.0, conditions.jitter)
        return conditions.latency

    # -- connections -----------------------------------------------------------
    def open_connection(self, client_ip, client_port, server_ip, server_port,
                        client_factory, connector):
        """Called by a host's ``connectTCP`` once the latency has passed."""
        factory = self.listeners.get((server_ip, server_port))
        if factory is None:
            connector.failed(error.ConnectionRefusedError(f"{server_ip}:{server_port}"))
            return
        client_addr = IPv4Address("TCP", client_ip, client_port)
        server_addr = IPv4Address("TCP", server_ip, server_port)
        server_proto = factory.buildProtocol(client_addr)
        if server_proto is None:
            connector.failed(error.ConnectionRefusedError("refused by the listener"))
            return
        client_proto = client_factory.buildProtocol(server_addr)
        if client_proto is None:
            connector.failed(error.ConnectionLost("the client factory built no protocol"))
            return
        connection = SimConnection(self, client_addr, server_addr)
        self.connections.append(connection)
        connection.server.attach(server_proto)
        connection.client.attach(client_proto)
        connector.connected(connection.client)
        server_proto.makeConnection(connection.server)
        client_proto.makeConnection(connection.client)

    def connection_closed(self, connection):
        if connection in self.connections:
            self.connections.remove(connection)


class SimConnection:
    """One connection: ``client`` and ``server`` :class:`SimTransport`."""

    def __init__(self, network, client_addr, server_addr):
        self.network = network
        self.client = SimTransport(self, client_addr, server_addr)
        self.server = SimTransport(self, server_addr, client_addr)
        self.client.other = self.server
        self.server.other = self.client

    def _maybe_done(self):
        if self.client.lost and self.server.lost:
            self.network.connection_closed(self)


@implementer(ITransport)
class SimTransport:
    """One side of a :class:`SimConnection` (an ``ITransport`` for PeerProtocol).

    Writes are cut into frames, each scheduled on the clock after the link's
    delay (see :class:`SimNetwork`); closing tells the other side after the
    frames already on their way.
    """

    def __init__(self, connection, host_addr, peer_addr):
        self.connection = connection
        self.network = connection.network
        self.host_addr = host_addr
        self.peer_addr = peer_addr
        self.src = host_addr.host
        self.dst = peer_addr.host
        self.other = None
        self.protocol = None
        self.disconnecting = False
        self.lost = False
        self.frames_out = 0
        self._buffer = b""
        self._last_arrival = 0.0
        self.poll_txids = {}  # poll id -> txids asked on this connection (byzantine hooks)
        self.producer = None

    def attach(self, protocol):
        self.protocol = protocol

    # -- ITransport ------------------------------------------------------------
    def write(self, data):
        if self.disconnecting or self.lost:
            return
        buffer = self._buffer + data if self._buffer else bytes(data)
        offset, size = 0, len(buffer)
        while size - offset >= _HEADER_SIZE:
            end = offset + _HEADER_SIZE + int.from_bytes(buffer[offset:offset + 4], "big")
            if end > size:
                break
            self._send_frame(buffer[offset + _HEADER_SIZE:end])
            offset = end
        self._buffer = buffer[offset:] if offset else buffer

    def writeSequence(self, data):
        self.write(b"".join(data))

    def loseConnection(self):
        """Close after the frames already written (the other side learns after them)."""
        self._close(error.ConnectionDone("closed by this side"),
                    error.ConnectionDone("closed by the peer"))

    def abortConnection(self):
        self._close(error.ConnectionAborted("aborted by this side"),
                    error.ConnectionLost("reset by the peer"))

    def getPeer(self):
        return self.peer_addr

    def getHost(self):
        return self.host_addr

    def setTcpNoDelay(self, enabled):
        pass

    def registerProducer(self, producer, streaming):
        """Frames leave at once (links have no send buffer): a producer is never paused."""
        self.producer = producer

    def unregisterProducer(self):
        self.producer = None

    # -- frames --------------------------------------------------------------
    def _send_frame(self, payload):
        network = self.network
        network.frames_sent += 1
        hook = network.filters.get(self.src)
        if hook is not None:
            payload = hook.outgoing(self, payload)
            if payload is None:
                network.frames_dropped += 1
                return
        self.frames_out += 1
        delay = network.frame_delay(self.src, self.dst,
                                    lossless=self.frames_out <= HANDSHAKE_FRAMES)
        if delay is None:
            network.frames_dropped += 1
            return
        self._schedule(delay, self.other._receive_frame, payload)

    def _schedule(self, delay, fn, *args):
        clock = self.network.clock
        at = clock.rightNow + delay
        if not self.network.link(self.src, self.dst).reorder:
            at = max(at, self._last_arrival)
            self._last_arrival = at
        clock.call_at(at, fn, *args)

    def _receive_frame(self, payload):
        network = self.network
        if self.lost or network.blocked(self.dst, self.src):
            network.frames_dropped += 1
            return
        hook = network.filters.get(self.src)
        if hook is not None:
            payload = hook.incoming(self, payload)
            if payload is None:
                network.frames_dropped += 1
                return
        network.frames_delivered += 1
        self.protocol.dataReceived(len(payload).to_bytes(4, "big") + payload)

    # -- closing -------------------------------------------------------------
    def _close(self, own_reason, peer_reason):
        if self.disconnecting or self.lost:
            return
        self.disconnecting = True
        self.network.clock.callLater(0, self._lose, own_reason)
        if not self.network.blocked(self.src, self.dst):
            self._schedule(self.network.link(self.src, self.dst).latency,
                           self.other._peer_closed, peer_reason)

    def _peer_closed(self, reason):
        if self.lost or self.network.blocked(self.dst, self.src):
            return
        self.disconnecting = True
        self._lose(reason)

    def _lose(self, reason):
        if self.lost:
            return
        self.lost = True
        self.disconnecting = True
        self.protocol.connectionLost(Failure(reason))
        self.connection._maybe_done()
