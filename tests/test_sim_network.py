"""The simulator's clock, hosts and links, with plain Int32 protocols."""

from twisted.internet import error, protocol
from twisted.internet.endpoints import HostnameEndpoint, serverFromString
from twisted.internet.interfaces import (
    IConnector,
    IHostnameResolver,
    IListeningPort,
    IReactorPluggableNameResolver,
    IReactorTCP,
    IReactorTime,
    ITransport,
)
from twisted.protocols.basic import Int32StringReceiver
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from timecoin.sim.byzantine import (
    ConstantVotes,
    EquivocatingVotes,
    FlippedVotes,
    HonestVotes,
    IVoteStrategy,
    SilentVotes,
)
from timecoin.sim.clock import SimClock
from timecoin.sim.hosts import HostReactor
from timecoin.sim.network import HANDSHAKE_FRAMES, LinkConditions, SimNetwork


class ClockTests(unittest.TestCase):
    def test_calls_run_at_their_own_time_in_order(self):
        clock = SimClock()
        seen = []
        clock.callLater(2.0, lambda: seen.append(("b", clock.seconds())))
        clock.callLater(1.0, lambda: seen.append(("a", clock.seconds())))
        clock.callLater(1.0, lambda: seen.append(("a2", clock.seconds())))
        cancelled = clock.callLater(1.5, seen.append, "never")
        cancelled.cancel()
        clock.advance(10)
        self.assertEqual(seen, [("a", 1.0), ("a2", 1.0), ("b", 2.0)])
        self.assertEqual(clock.seconds(), 10.0)

    def test_reset_and_delay(self):
        clock = SimClock()
        seen = []
        early = clock.callLater(5.0, lambda: seen.append(("early", clock.seconds())))
        late = clock.callLater(1.0, lambda: seen.append(("late", clock.seconds())))
        early.reset(0.5)
        late.delay(2.0)
        self.assertEqual([c.getTime() for c in clock.getDelayedCalls()], [0.5, 3.0])
        clock.advance(4)
        self.assertEqual(seen, [("early", 0.5), ("late", 3.0)])
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_run_until_stops_when_the_predicate_holds(self):
        clock = SimClock()
        seen = []
        for t in range(1, 6):
            clock.callLater(t, seen.append, t)
        self.assertTrue(clock.run_until(100, lambda: len(seen) == 3))
        self.assertEqual(clock.seconds(), 3.0)
        self.assertFalse(clock.run_until(4.5, lambda: len(seen) == 10))
        self.assertEqual((seen, clock.seconds()), ([1, 2, 3, 4], 4.5))


class Recorder(Int32StringReceiver):
    """Records frames and when they arrived."""

    def __init__(self, clock, log):
        self.clock = clock
        self.log = log
        self.lost = None

    def stringReceived(self, data):
        self.log.append((round(self.clock.seconds(), 6), data))

    def connectionLost(self, reason):
        self.lost = reason


class RecordingFactory(protocol.ClientFactory):
    def __init__(self, clock):
        self.clock = clock
        self.log = []
        self.protocols = []

    def buildProtocol(self, addr):
        p = Recorder(self.clock, self.log)
        p.factory = self
        self.protocols.append(p)
        return p


class LinkTests(unittest.TestCase):
    def setUp(self):
        self.clock = SimClock()
        self.network = SimNetwork(self.clock, seed=7, conditions=LinkConditions(latency=0.05))
        self.a = HostReactor(self.network, "10.0.0.1")
        self.b = HostReactor(self.network, "10.0.0.2")
        self.server = RecordingFactory(self.clock)
        self.port = self.wait(serverFromString(self.b, "tcp:9000").listen(self.server))
        self.client_factory = RecordingFactory(self.clock)
        self.client = self.wait(HostnameEndpoint(self.a, "10.0.0.2", 9000).connect(
            self.client_factory))

    def wait(self, d):
        results = []
        d.addBoth(results.append)
        self.clock.run_until(self.clock.seconds() + 60, lambda: bool(results))
        self.assertEqual(len(results), 1)
        if hasattr(results[0], "raiseException"):
            results[0].raiseException()
        return results[0]

    def test_interfaces(self):
        verifyObject(IReactorTime, self.a)
        verifyObject(IReactorTCP, self.a)
        verifyObject(IReactorPluggableNameResolver, self.a)
        verifyObject(IHostnameResolver, self.a.nameResolver)
        verifyObject(IListeningPort, self.port)
        verifyObject(ITransport, self.client.transport)
        connector = self.a.connectTCP("10.0.0.2", 9000, RecordingFactory(self.clock))
        verifyObject(IConnector, connector)
        for strategy in (HonestVotes(), FlippedVotes(), ConstantVotes(True), SilentVotes(),
                         EquivocatingVotes()):
            verifyObject(IVoteStrategy, strategy)

    def test_connection_takes_the_latency_and_addresses_are_the_hosts(self):
        self.assertAlmostEqual(self.clock.seconds(), 0.05)
        server_side = self.server.protocols[0]
        self.assertEqual(server_side.transport.getPeer().host, "10.0.0.1")
        self.assertEqual(self.client.transport.getPeer().port, 9000)
        self.assertEqual(self.port.getHost().host, "10.0.0.2")

    def test_frames_arrive_whole_after_the_latency_in_order(self):
        self.client.sendString(b"one")
        # Two frames written in pieces: still delivered as two whole frames.
        data = b"".join(len(s).to_bytes(4, "big") + s for s in (b"two", b"three"))
        self.client.transport.write(data[:5])
        self.client.transport.write(data[5:])
        self.clock.advance(1)
        self.assertEqual([d for _, d in self.server.log], [b"one", b"two", b"three"])
        self.assertEqual({t for t, _ in self.server.log}, {0.1})

    def test_loss_drops_whole_frames_deterministically(self):
        def run(seed):
            clock = SimClock()
            network = SimNetwork(clock, seed=seed, conditions=LinkConditions(loss=0.3))
            server = RecordingFactory(clock)
            HostReactor(network, "10.0.0.2").listenTCP(9000, server)
            client = RecordingFactory(clock)
            HostReactor(network, "10.0.0.1").connectTCP("10.0.0.2", 9000, client)
            clock.advance(1)
            for n in range(200):
                client.protocols[0].sendString(b"%d" % n)
            clock.advance(1)
            return [d for _, d in server.log]
        first = run(1)
        self.assertLess(len(first), 200)
        self.assertGreater(len(first), 100)
        self.assertEqual(first, run(1))
        self.assertNotEqual(first, run(2))
        self.assertEqual(first, sorted(first, key=int))

    def test_handshake_frames_are_never_lost(self):
        clock = SimClock()
        network = SimNetwork(clock, seed=1, conditions=LinkConditions(loss=0.99))
        server = RecordingFactory(clock)
        HostReactor(network, "10.0.0.2").listenTCP(9000, server)
        client = RecordingFactory(clock)
        HostReactor(network, "10.0.0.1").connectTCP("10.0.0.2", 9000, client)
        clock.advance(1)
        for n in range(5):
            client.protocols[0].sendString(b"%d" % n)
        clock.advance(1)
        # Every frame is lost but the first HANDSHAKE_FRAMES (hello, auth)...
        self.assertEqual([d for _, d in server.log],
                         [b"%d" % n for n in range(HANDSHAKE_FRAMES)])
        # ... while a dead link (loss=1.0) loses even those.
        network.set_link("10.0.0.1", "10.0.0.2", loss=1.0)
        HostReactor(network, "10.0.0.1").connectTCP("10.0.0.2", 9000, client)
        clock.advance(1)
        client.protocols[1].sendString(b"hello")
        clock.advance(1)
        self.assertEqual(len(server.log), HANDSHAKE_FRAMES)

    def test_reordering_jitters_each_frame(self):
        self.network.set_link("10.0.0.1", "10.0.0.2", jitter=0.5, reorder=True)
        for n in range(50):
            self.client.sendString(b"%d" % n)
        self.clock.advance(2)
        received = [d for _, d in self.server.log]
        self.assertEqual(sorted(received, key=int), [b"%d" % n for n in range(50)])
        self.assertNotEqual(received, sorted(received, key=int))

    def test_partition_drops_frames_and_healing_restores(self):
        self.client.sendString(b"in flight")
        self.network.partition(["10.0.0.1"], ["10.0.0.2"])
        self.client.sendString(b"cut")
        self.clock.advance(1)
        self.assertEqual(self.server.log, [])
        self.network.heal()
        self.client.sendString(b"healed")
        self.clock.advance(1)
        self.assertEqual([d for _, d in self.server.log], [b"healed"])

    def test_closing_tells_the_other_side_after_the_data(self):
        self.client.sendString(b"last")
        self.client.transport.loseConnection()
        self.clock.advance(1)
        server_side = self.server.protocols[0]
        self.assertEqual([d for _, d in self.server.log], [b"last"])
        self.assertIsNotNone(server_side.lost)
        self.assertIsNotNone(self.client.lost)
        self.assertEqual(self.network.connections, [])

    def test_refused_and_timed_out_connections_fail(self):
        d = HostnameEndpoint(self.a, "10.0.0.2", 9999).connect(RecordingFactory(self.clock))
        self.assertRaises(error.ConnectionRefusedError, self.wait, d)
        self.network.partition(["10.0.0.1"])
        d = HostnameEndpoint(self.a, "10.0.0.2", 9000, timeout=5).connect(
            RecordingFactory(self.clock))
        started = self.clock.seconds()
        self.assertRaises(error.TCPTimedOutError, self.wait, d)
        self.assertAlmostEqual(self.clock.seconds() - started, 5.0)
