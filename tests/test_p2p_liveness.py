"""Timers, limits and bans, driven by a memory reactor's clock."""

from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.test import iosim
from twisted.trial import unittest

from tests.p2p_fakes import FakePeerHost
from timecoin.p2p import messages as m
from timecoin.p2p.config import P2PConfig
from timecoin.p2p.service import PeerNetworkService

CONFIG = P2PConfig(max_per_ip=2, max_peers=3, ping_interval=60.0)


def addr(ip="127.0.0.1", port=40000):
    return IPv4Address("TCP", ip, port)


class MemoryNode:
    """A PeerNetworkService on a MemoryReactorClock (no listening port)."""

    def __init__(self, case, db_path=":memory:", config=CONFIG, identity=None):
        self.reactor = MemoryReactorClock()
        self.host = FakePeerHost(db_path=db_path, identity=identity)
        self.service = PeerNetworkService(self.reactor, self.host, None, (), config)
        self.service.startService()
        case.addCleanup(self.stop)

    def stop(self):
        # StringTransport never reports the loss of a connection: do it here.
        for peer in list(self.service._connections.values()):
            if isinstance(peer.transport, StringTransport):
                peer.connectionLost(None)
        return self.service.stopService()

    def inbound(self, ip="127.0.0.1", port=40000):
        peer = self.service.build_peer("inbound", addr(ip, port))
        if peer is not None:
            peer.makeConnection(StringTransport(peerAddress=addr(ip, port)))
        return peer


def connected_pair(case):
    """Two nodes joined by an in-memory pump, sharing one clock."""
    a, b = MemoryNode(case), MemoryNode(case)
    b.service.reactor = b.reactor = a.reactor
    clock = a.reactor
    client, server, pump = iosim.connectedServerAndClient(
        lambda: a.service.build_peer("inbound", addr("127.0.0.2")),
        lambda: b.service.build_peer("outbound", addr("127.0.0.1")),
        greet=False, clock=clock)
    pump.flush()
    return a, b, client, server, pump, clock


class Timers(unittest.TestCase):
    def test_silent_peer_dropped_at_handshake_timeout(self):
        node = MemoryNode(self)
        peer = node.inbound()
        node.reactor.advance(CONFIG.handshake_timeout - 0.1)
        self.assertFalse(peer.transport.disconnecting)
        node.reactor.advance(0.2)
        self.assertTrue(peer.transport.disconnecting)
        self.assertEqual(node.service.list_banned(), [])
        peer.connectionLost(None)
        self.assertEqual(node.service.connection_counts(), {"inbound": 0, "outbound": 0})

    def test_handshake_and_ping_rtt(self):
        a, b, client, server, pump, clock = connected_pair(self)
        self.assertTrue(server.is_ready and client.is_ready)
        self.assertEqual(a.service.peer_count(), 1)
        self.assertEqual(b.service.peer_count(), 1)
        rtts = []
        client.ping().addCallback(rtts.append)
        clock.advance(0.25)
        pump.flush()
        self.assertEqual(rtts, [250.0])
        self.assertEqual(client.ping_ms, 250.0)
        for peer in (client, server):
            peer.transport.abortConnection()
        pump.flush()

    def test_idle_peer_dropped(self):
        a, b, client, server, pump, clock = connected_pair(self)
        client.transport.write = lambda data: None  # the client goes silent
        server.transport.write = lambda data: None
        clock.advance(CONFIG.idle_timeout + 1)
        self.assertTrue(client.transport.disconnecting or server.transport.disconnecting)
        pump.flush()

    def test_per_ip_and_max_peers_limits(self):
        node = MemoryNode(self)
        self.assertIsNotNone(node.inbound("127.0.0.1", 1))
        self.assertIsNotNone(node.inbound("127.0.0.1", 2))
        self.assertIsNone(node.inbound("127.0.0.1", 3))
        self.assertIsNotNone(node.inbound("127.0.0.2", 1))
        self.assertEqual(node.service.connection_counts(), {"inbound": 3, "outbound": 0})
        # Every slot is taken: a new connection evicts a silent one (see test_p2p_limits).
        first = node.service.connections()[0]
        self.assertIsNotNone(node.inbound("127.0.0.3", 1))
        self.assertTrue(first.transport.disconnecting)


class Bans(unittest.TestCase):
    def test_bans_persist_grow_and_expire(self):
        path = self.mktemp()
        node = MemoryNode(self, db_path=path)
        peer = node.inbound("10.9.9.9")
        peer.stringReceived(b"\x09junk")
        self.assertTrue(peer.transport.disconnecting)
        [ban] = node.service.list_banned()
        self.assertEqual((ban["address"], ban["offences"]), ("10.9.9.9", 1))
        self.assertEqual(ban["time_remaining"], CONFIG.ban_base)
        self.assertIsNone(node.inbound("10.9.9.9"))
        node.host.db.close()

        restarted = MemoryNode(self, db_path=path)
        self.assertEqual([b["address"] for b in restarted.service.list_banned()], ["10.9.9.9"])
        self.assertIsNone(restarted.inbound("10.9.9.9"))
        restarted.reactor.advance(CONFIG.ban_base + 1)
        self.assertEqual(restarted.service.list_banned(), [])
        again = restarted.inbound("10.9.9.9")
        self.assertIsNotNone(again)
        again.misbehave("test offence")
        [ban] = restarted.service.list_banned()
        self.assertEqual(ban["offences"], 2)
        self.assertEqual(ban["time_remaining"], 2 * CONFIG.ban_base)

    def test_rpc_ban_methods(self):
        node = MemoryNode(self)
        peer = node.inbound("10.1.1.1")
        node.service.set_ban("10.1.1.1", 30)
        self.assertTrue(peer.transport.disconnecting)
        node.service.set_ban("10.2.2.2", None)
        self.assertEqual([b["address"] for b in node.service.list_banned()],
                         ["10.1.1.1", "10.2.2.2"])
        node.service.set_ban("10.1.1.1", remove=True)
        self.assertEqual([b["address"] for b in node.service.list_banned()], ["10.2.2.2"])
        node.service.clear_banned()
        self.assertEqual(node.service.list_banned(), [])
        rows = node.host.db.conn.execute("SELECT COUNT(*) FROM bans").fetchone()
        self.assertEqual(rows, (0,))


class AddressExchange(unittest.TestCase):
    def test_getaddr_answered_once_and_addresses_persisted(self):
        a, b, client, server, pump, clock = connected_pair(self)
        server.send(m.Addr((m.PeerAddress("192.0.2.7", 24200, 100),
                            m.PeerAddress("192.0.2.8", 0, 100))))
        pump.flush()
        self.assertIn("192.0.2.7:24200", b.service.addresses)
        self.assertNotIn("192.0.2.8:0", b.service.addresses)
        rows = b.host.db.conn.execute("SELECT address FROM peers").fetchall()
        self.assertIn(("192.0.2.7:24200",), rows)
        replies = []
        b.service.register_handler(m.ADDR, lambda pid, msg: replies.append(msg))
        a.service.addresses.add([("198.51.100.1:24200", clock.seconds())])
        client.send(m.GetAddr())
        client.send(m.GetAddr())
        pump.flush()
        # b asked on connect and a answered then; later requests get nothing.
        self.assertTrue(server.addr_sent)
        self.assertEqual(replies, [])
        for peer in (client, server):
            peer.transport.abortConnection()
        pump.flush()
