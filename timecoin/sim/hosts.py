"""A node's view of the simulated world: its own IP address, the shared clock.

:class:`HostReactor` is what a simulated node gets as its reactor. Timers go
to the one :class:`~timecoin.sim.clock.SimClock`; ``listenTCP`` and
``connectTCP`` go to the :class:`~timecoin.sim.network.SimNetwork`, so the
node's own code (``serverFromString``, ``HostnameEndpoint``,
``ClientService``) works unchanged: seeds, reconnection with backoff and
discovery all run as they do on sockets. Names resolve only when they are IP
addresses (at once, without threads).
"""

import ipaddress
import itertools

from twisted.internet import error
from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import (
    IConnector,
    IHostnameResolver,
    IHostResolution,
    IListeningPort,
    IReactorPluggableNameResolver,
    IReactorTCP,
    IReactorTime,
)
from twisted.python.failure import Failure
from zope.interface import implementer

FIRST_EPHEMERAL_PORT = 40_000


@implementer(IReactorTime, IReactorTCP, IReactorPluggableNameResolver)
class HostReactor:
    """The reactor of one simulated host at ``ip`` (see the module docstring)."""

    def __init__(self, network, ip):
        self.network = network
        self.clock = network.clock
        self.ip = ip
        self._ports = itertools.count(FIRST_EPHEMERAL_PORT)
        self.nameResolver = LiteralResolver()

    # -- IReactorTime ------------------------------------------------------------
    def seconds(self):
        return self.clock.seconds()

    def callLater(self, delay, callable, *args, **kw):
        return self.clock.callLater(delay, callable, *args, **kw)

    def getDelayedCalls(self):
        return self.clock.getDelayedCalls()

    # -- IReactorPluggableNameResolver --------------------------------------------
    def installNameResolver(self, resolver):
        previous, self.nameResolver = self.nameResolver, resolver
        return previous

    # -- IReactorTCP ----------------------------------------------------------------
    def listenTCP(self, port, factory, backlog=50, interface=""):
        """Listen on this host's address (whatever ``interface`` says)."""
        if not port:
            port = next(self._ports)
        key = (self.ip, port)
        if key in self.network.listeners:
            raise error.CannotListenError(self.ip, port, "address already in use")
        listening = SimListeningPort(self.network, IPv4Address("TCP", self.ip, port), factory)
        self.network.listeners[key] = factory
        return listening

    def connectTCP(self, host, port, factory, timeout=30, bindAddress=None):
        connector = SimConnector(self, host, port, factory, timeout)
        connector.connect()
        return connector

    def new_port(self):
        """An ephemeral port of this host, for the client side of a connection."""
        return next(self._ports)


@implementer(IListeningPort)
class SimListeningPort:
    """A listening port of a simulated host (connections come through the network)."""

    def __init__(self, network, address, factory):
        self._network = network
        self._address = address
        self.factory = factory

    def startListening(self):
        self._network.listeners[(self._address.host, self._address.port)] = self.factory

    def stopListening(self):
        key = (self._address.host, self._address.port)
        if self._network.listeners.get(key) is self.factory:
            del self._network.listeners[key]
        return None

    def getHost(self):
        return self._address


@implementer(IConnector)
class SimConnector:
    """An outbound connection attempt: it reaches the listener after the link's
    latency, is refused if nothing listens, and times out across a partition."""

    def __init__(self, host_reactor, host, port, factory, timeout):
        self._reactor = host_reactor
        self.host = host
        self.port = port
        self.factory = factory
        self.timeout = timeout
        self._pending = None
        self.transport = None
        self.state = "disconnected"

    def connect(self):
        network = self._reactor.network
        self.state = "connecting"
        self.factory.startedConnecting(self)
        src = self._reactor.ip
        if network.blocked(src, self.host):
            self._pending = self._reactor.callLater(
                self.timeout, self.failed, error.TCPTimedOutError(f"{self.host}:{self.port}"))
            return
        self._pending = self._reactor.callLater(
            network.link(src, self.host).latency, self._arrive)

    def _arrive(self):
        self._pending = None
        network = self._reactor.network
        if network.blocked(self._reactor.ip, self.host):
            self._pending = self._reactor.callLater(
                self.timeout, self.failed, error.TCPTimedOutError(f"{self.host}:{self.port}"))
            return
        network.open_connection(self._reactor.ip, self._reactor.new_port(), self.host, self.port,
                                self.factory, self)

    def connected(self, transport):
        self.state = "connected"
        self.transport = transport

    def failed(self, reason):
        self._pending = None
        self.state = "disconnected"
        self.factory.clientConnectionFailed(self, Failure(reason))

    def stopConnecting(self):
        if self.state != "connecting":
            raise error.NotConnectingError()
        if self._pending is not None and self._pending.active():
            self._pending.cancel()
        self.failed(error.UserError("stopped connecting"))

    def disconnect(self):
        if self.state == "connecting":
            self.stopConnecting()
        elif self.transport is not None:
            self.transport.loseConnection()

    def getDestination(self):
        return IPv4Address("TCP", self.host, self.port)


@implementer(IHostResolution)
class _Resolution:
    def __init__(self, name):
        self.name = name

    def cancel(self):
        pass


@implementer(IHostnameResolver)
class LiteralResolver:
    """Resolves IPv4 literals at once; any other name resolves to nothing."""

    def resolveHostName(self, resolutionReceiver, hostName, portNumber=0,
                        addressTypes=None, transportSemantics="TCP"):
        resolution = _Resolution(hostName)
        resolutionReceiver.resolutionBegan(resolution)
        if _is_ipv4(hostName):
            resolutionReceiver.addressResolved(IPv4Address("TCP", hostName, portNumber))
        resolutionReceiver.resolutionComplete()
        return resolution


def _is_ipv4(name):
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        return False
    return True
