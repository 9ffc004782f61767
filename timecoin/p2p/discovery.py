"""Dialling addresses learned from peers, to keep enough outbound connections.

Every ``discovery_interval`` seconds, while the node has fewer than
``target_outbound`` outbound connections, it tries one-shot connections to
addresses from its peer table (most recently seen first) that it is not
connected or connecting to, that are not banned, and that have not turned out
to be this node itself. A failed attempt is recorded in the peer table. Seeds
(``--peer``) are kept up separately, with reconnection and backoff.
"""

from twisted.internet import defer
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from timecoin.p2p.peerstore import join_host_port, split_host_port


class Discovery:
    """Fills the outbound slots of a :class:`PeerNetworkService` from its peer table."""

    log = Logger()

    def __init__(self, network, factory_for):
        self._network = network
        self._factory_for = factory_for  # address -> a Factory of outbound peers
        self._dialing = {}  # address -> Deferred of the connection attempt
        self.self_addresses = set()
        self._loop = None
        self.attempts = 0

    def start(self, interval):
        self._loop = LoopingCall(self.tick)
        self._loop.clock = self._network.reactor
        self._loop.start(interval, now=False)

    def stop(self):
        """Stop dialling and cancel the attempts under way."""
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        for attempt in list(self._dialing.values()):
            attempt.cancel()

    def dialing(self):
        """The addresses being dialled now."""
        return set(self._dialing)

    def tick(self):
        net = self._network
        config = net.config
        need = config.target_outbound - net.connection_counts()["outbound"] - len(self._dialing)
        if need <= 0 or net.stopping:
            return
        busy = net.connected_addresses() | set(self._dialing) | self.self_addresses
        for entry in net.addresses.sample(need * 4, exclude=busy):
            if need <= 0:
                break
            if net.bans.is_banned(entry.host):
                continue
            self.dial(join_host_port(entry.host, entry.port)).addErrback(lambda _: None)
            need -= 1

    def dial(self, address):
        """One outbound connection attempt to ``address``; its Deferred (fires
        with None once connected, fails if it could not connect)."""
        net = self._network
        host, port = split_host_port(address)
        endpoint = HostnameEndpoint(net.reactor, host, port, timeout=10)
        if net.client_tls is not None:
            endpoint = wrapClientTLS(net.client_tls, endpoint)
        self.attempts += 1
        d = endpoint.connect(self._factory_for(address))
        self._dialing[address] = d

        def failed(failure):
            if failure.check(defer.CancelledError):
                return
            net.addresses.failed(address)
            self.log.debug("could not reach {address}: {error}", address=address,
                           error=failure.getErrorMessage())
            return failure
        d.addCallbacks(lambda _: None, failed)

        def done(result):
            self._dialing.pop(address, None)
            return result
        d.addBoth(done)
        result = defer.Deferred()
        d.chainDeferred(result)
        d.addErrback(lambda _: None)  # the caller gets the failure, not this chain
        return result
