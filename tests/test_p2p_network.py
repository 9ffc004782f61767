"""Multi-node tests over real sockets on 127.0.0.1: handshake, relay, duplicates, ping."""

from twisted.internet import defer, reactor
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from tests.p2p_fakes import (
    FakePeerHost,
    ScriptedPeer,
    close_at_end,
    connect,
    make_tx,
    node_address,
    start_node,
)
from timecoin.interfaces import IPeerNetwork
from timecoin.p2p import messages as m
from timecoin.p2p.host import IPeerHost
from timecoin.testing.waiting import wait_until


class ServiceBasics(unittest.TestCase):
    def test_provides_interfaces(self):
        from twisted.internet import reactor

        from timecoin.p2p.service import PeerNetworkService
        host = FakePeerHost()
        self.assertTrue(verifyObject(IPeerHost, host))
        self.assertTrue(verifyObject(IPeerNetwork, PeerNetworkService(reactor, host)))


class TwoNodes(unittest.TestCase):
    @defer.inlineCallbacks
    def test_handshake_and_peer_info(self):
        a = yield start_node(self)
        b = yield start_node(self, seeds=[node_address(a)])
        yield wait_until(reactor, lambda: a.peer_count() == 1 and b.peer_count() == 1)
        [info_b] = b.peer_info()
        self.assertEqual(info_b["direction"], "outbound")
        self.assertEqual(info_b["pubkey"], a.host.identity.pubkey.hex())
        self.assertEqual(info_b["version"], "timecoin/0.1.0-test")
        [info_a] = a.peer_info()
        self.assertEqual(info_a["direction"], "inbound")
        self.assertEqual(a.connection_counts(), {"inbound": 1, "outbound": 0})
        self.assertEqual(b.connection_counts(), {"inbound": 0, "outbound": 1})
        # The inbound side learned b's listening address from its hello.
        self.assertIn(node_address(b), a.addresses)

    @defer.inlineCallbacks
    def test_ping_ms_measured(self):
        a = yield start_node(self)
        b = yield start_node(self, seeds=[node_address(a)])
        yield wait_until(reactor, lambda: b.peer_count() == 1)
        peer = b.get_peer(b.peers()[0].peer_id)
        rtt = yield peer.ping()
        self.assertIsInstance(rtt, float)
        self.assertGreaterEqual(rtt, 0.0)
        self.assertEqual(b.peer_info()[0]["ping_ms"], round(rtt, 3))

    @defer.inlineCallbacks
    def test_self_connection_closed_and_not_retried(self):
        a = yield start_node(self)
        a.connect(node_address(a))
        yield wait_until(reactor, lambda: not a._seed_services)
        yield wait_until(reactor, lambda: not a.connection_counts()["inbound"])
        self.assertEqual(a.peer_count(), 0)
        self.assertEqual(a.list_banned(), [])

    @defer.inlineCallbacks
    def test_duplicate_connections_resolve_to_one(self):
        a = yield start_node(self)
        b = yield start_node(self)
        a.connect(node_address(b))
        b.connect(node_address(a))
        yield wait_until(reactor, lambda: a.peer_count() == 1 and b.peer_count() == 1
                       and sum(a.connection_counts().values()) == 1
                       and sum(b.connection_counts().values()) == 1)
        # Both sides kept the same connection: one side's outbound is the other's inbound.
        self.assertNotEqual(a.peer_info()[0]["direction"], b.peer_info()[0]["direction"])

    @defer.inlineCallbacks
    def test_second_connection_with_same_key_refused(self):
        a = yield start_node(self)
        first = yield connect(a.listen_port(), ScriptedPeer())
        close_at_end(self, first)
        yield first.ready
        second = yield connect(a.listen_port(), ScriptedPeer(identity=first.identity))
        close_at_end(self, second)
        yield second.lost
        self.assertIn(m.Reject("duplicate-connection", "already connected to this node"),
                      second.messages)
        self.assertEqual(a.peer_count(), 1)
        self.assertEqual(a.list_banned(), [])


class Relay(unittest.TestCase):
    @defer.inlineCallbacks
    def test_relay_across_three_nodes_once_per_peer(self):
        a = yield start_node(self)
        b = yield start_node(self, seeds=[node_address(a)])
        c = yield start_node(self, seeds=[node_address(a), node_address(b)])
        nodes = [a, b, c]
        yield wait_until(reactor, lambda: all(n.peer_count() == 2 for n in nodes))
        announcements = {id(n): [] for n in nodes}
        deliveries = {id(n): [] for n in nodes}
        for n in nodes:
            n.register_handler(m.INV, lambda pid, msg, n=n: announcements[id(n)].append(
                (pid, msg.txids)))
            n.register_handler(m.TX, lambda pid, msg, n=n: deliveries[id(n)].append(pid))
        txs = [make_tx(i) for i in range(5)]
        for tx in txs:
            a.host.receive_tx(tx.raw, "rpc")
        yield wait_until(reactor, lambda: all(len(n.host.txs) == 5 for n in nodes))
        # Let any late announcements arrive before counting.
        yield wait_until(reactor, lambda: sum(map(len, announcements.values())) >= 10)
        yield b.get_peer(b.peers()[0].peer_id).ping()
        for n in nodes:
            pairs = [(pid, txid) for pid, txids in announcements[id(n)] for txid in txids]
            self.assertEqual(len(pairs), len(set(pairs)), "a txid announced twice by a peer")
            self.assertLessEqual(len(deliveries[id(n)]), 5)
        self.assertEqual(deliveries[id(a)], [])
        self.assertEqual(len(deliveries[id(b)]), 5)
        self.assertEqual(len(deliveries[id(c)]), 5)

    @defer.inlineCallbacks
    def test_invalid_transaction_is_misbehaviour(self):
        a = yield start_node(self)
        peer = yield connect(a.listen_port(), ScriptedPeer())
        close_at_end(self, peer)
        yield peer.ready
        tx = make_tx(1)
        forged = bytearray(tx.raw)
        forged[-40] ^= 1  # inside the signature
        peer.send(m.TxMessage(bytes(forged)))
        yield peer.lost
        self.assertEqual([b["address"] for b in a.list_banned()], ["127.0.0.1"])

    @defer.inlineCallbacks
    def test_ban_peer_closes_and_bans_with_the_reason(self):
        a = yield start_node(self)
        peer = yield connect(a.listen_port(), ScriptedPeer())
        close_at_end(self, peer)
        yield peer.ready
        yield wait_until(reactor, lambda: a.peer_count() == 1)
        [ready] = a.peers()
        self.assertTrue(a.ban_peer(ready.peer_id, "served a bad block"))
        yield peer.lost
        [ban] = a.list_banned()
        self.assertEqual((ban["address"], ban["reason"]), ("127.0.0.1", "served a bad block"))
        self.assertFalse(a.ban_peer(ready.peer_id, "again"))

    @defer.inlineCallbacks
    def test_known_but_not_misbehaving(self):
        a = yield start_node(self)
        peer = yield connect(a.listen_port(), ScriptedPeer())
        close_at_end(self, peer)
        yield peer.ready
        tx = make_tx(2)
        peer.send(m.TxMessage(tx.raw))
        peer.send(m.TxMessage(tx.raw))
        peer.send(m.Ping(5))
        yield wait_until(reactor, lambda: m.Pong(5) in peer.messages)
        self.assertEqual(list(a.host.txs), [tx.txid])
        self.assertEqual(a.list_banned(), [])
