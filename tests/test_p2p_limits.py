"""Peer limits: send budgets, the in-flight table, the node budget, eviction.

On memory transports and a memory reactor's clock where the behaviour is
deterministic; over real sockets on 127.0.0.1 for the hostile peers of the
hardening issue (a peer that never reads, silent sockets from 8 addresses).
"""

import os
from collections import OrderedDict

from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from tests.p2p_fakes import (
    RawPeer,
    ScriptedPeer,
    close_at_end,
    connect,
    make_tx,
    start_node,
)
from tests.test_p2p_liveness import MemoryNode
from tests.test_p2p_states import hello_from, written
from timecoin.interfaces import IPeerNetwork
from timecoin.ledger.keys import PrivateKey
from timecoin.ledger.networks import DEVNET
from timecoin.p2p import messages as m
from timecoin.p2p.config import P2PConfig
from timecoin.p2p.eviction import Candidate, Evictor, network_group
from timecoin.p2p.framing import encode_frame
from timecoin.p2p.handshake import transcript
from timecoin.p2p.inflight import InFlightTable
from timecoin.p2p.sendbuffer import TRANSPORT_BUFFER
from timecoin.testing.waiting import wait_until


class CountingOrderedDict(OrderedDict):
    """Counts the entries any iteration visits: a table that rebuilt itself
    (or scanned its entries) on each update would show it here."""

    visited = 0

    def __iter__(self):
        for key in OrderedDict.__iter__(self):
            CountingOrderedDict.visited += 1
            yield key

    def items(self):
        raise AssertionError("the in-flight table must not be walked")

    keys = values = items


class InFlight(unittest.TestCase):
    def test_updates_are_constant_time_when_full(self):
        table = InFlightTable(capacity=200_000, per_peer=10**9)
        table._entries = CountingOrderedDict()
        for n in range(200):
            batch = [n.to_bytes(4, "big") + bytes([k]) * 28 for k in range(250)]
            table.request(batch, peer_id=1, now=0.0, deadline=30.0)
        self.assertEqual(len(table), 50_000)
        # Full, and far past the 100k entries at which the old table was rebuilt.
        table.capacity = 50_000
        CountingOrderedDict.visited = 0
        for n in range(1000):
            table.request([b"new" + n.to_bytes(29, "big")], peer_id=2, now=1.0, deadline=31.0)
        self.assertEqual(len(table), 50_000)
        self.assertEqual(table.forgotten, 1000)
        # Each request peeks at the front once (expiry) and visits nothing else.
        self.assertLessEqual(CountingOrderedDict.visited, 1000)

    def test_expiry_pops_only_what_expired(self):
        table = InFlightTable(capacity=100, per_peer=100)
        self.assertEqual(table.request([b"a", b"b"], 1, now=0.0, deadline=10.0), [b"a", b"b"])
        self.assertEqual(table.request([b"c"], 2, now=5.0, deadline=15.0), [b"c"])
        self.assertEqual(table.request([b"a"], 2, now=6.0, deadline=16.0), [])  # in flight
        table.expire(10.0)
        self.assertEqual(len(table), 1)
        self.assertEqual((table.outstanding(1), table.outstanding(2)), (0, 1))
        self.assertEqual(table.request([b"a"], 2, now=11.0, deadline=21.0), [b"a"])
        table.delivered(b"c")
        self.assertEqual(table.outstanding(2), 1)

    def test_per_peer_limit(self):
        table = InFlightTable(capacity=100, per_peer=3)
        self.assertEqual(table.request([b"1", b"2", b"3", b"4"], 1, 0.0, 9.0), [b"1", b"2", b"3"])
        self.assertEqual(table.refused, 1)
        self.assertEqual(table.request([b"5"], 1, 0.0, 9.0), [])
        self.assertEqual(table.request([b"5"], 2, 0.0, 9.0), [b"5"])  # another peer is asked
        table.delivered(b"2")
        self.assertEqual(table.request([b"6"], 1, 0.0, 9.0), [b"6"])


class ReadyPeers(unittest.TestCase):
    """Handshaken peers on a memory node, the handshake driven by hand."""

    config = P2PConfig(max_per_ip=8, ping_interval=3600.0)

    def setUp(self):
        self.node = MemoryNode(self, config=self.config)
        self.identity = PrivateKey.generate()

    def ready_peer(self, port=40000):
        peer = self.node.inbound("127.0.0.1", port)
        nonce = os.urandom(m.NONCE_SIZE)
        peer.dataReceived(encode_frame(hello_from(self.identity, nonce)))
        own_hello = next(msg for msg in written(peer) if msg.KIND == m.HELLO)
        signed = transcript(DEVNET.magic, self.identity.pubkey, own_hello.pubkey, nonce,
                            own_hello.nonce, bytes(32), bytes(32))
        peer.dataReceived(encode_frame(m.Auth(self.identity.sign(signed))))
        self.assertTrue(peer.is_ready)
        return peer


class InvFlood(ReadyPeers):
    def test_flood_of_random_txids_leaves_honest_requests_cheap(self):
        service = self.node.service
        flooder = self.ready_peer()
        relay = service.relay
        relay.in_flight._entries = CountingOrderedDict()
        config = service.config
        for n in range(config.max_in_flight_per_peer // m.MAX_INV + 50):
            txids = tuple(n.to_bytes(4, "big") + k.to_bytes(28, "big") for k in range(m.MAX_INV))
            relay.on_inv(flooder, txids)
        # The flooder holds no more than its share of the table...
        self.assertEqual(relay.in_flight.outstanding(flooder.peer_id),
                         config.max_in_flight_per_peer)
        self.assertGreater(relay.in_flight.refused, 0)
        # ...and an honest announcement is still requested, at O(1) cost.
        self.identity = PrivateKey.generate()
        honest = self.ready_peer(40001)
        before = len(written(honest))
        CountingOrderedDict.visited = 0
        relay.on_inv(honest, (make_tx(1).txid,))
        self.assertLessEqual(CountingOrderedDict.visited, 1)
        [request] = written(honest)[before:]
        self.assertEqual(request, m.GetData((make_tx(1).txid,)))
        stats = {name: samples for name, _, _, samples in service.statistics()}
        self.assertEqual(stats["timecoin_peer_in_flight"],
                         [({}, config.max_in_flight_per_peer + 1)])


class SendBudget(ReadyPeers):
    def setUp(self):
        super().setUp()
        self.tx = make_tx(7)
        self.node.host.txs[self.tx.txid] = self.tx.raw

    def test_paused_peer_served_no_getdata_and_no_pushes(self):
        peer = self.ready_peer()
        service = self.node.service
        self.assertTrue(verifyObject(IPeerNetwork, service))
        peer.transport.producer.pauseProducing()  # as the transport does when its buffer fills
        self.assertTrue(peer.over_budget)
        before = len(written(peer))
        peer.dataReceived(encode_frame(m.GetData((self.tx.txid,) * 10)))
        self.assertEqual(written(peer)[before:], [])
        service.broadcast_tx(make_tx(8), push=True)
        self.assertEqual(written(peer)[before:], [m.Inv((make_tx(8).txid,))])
        stats = {name: samples for name, _, _, samples in service.statistics()}
        self.assertEqual(stats["timecoin_peer_getdata_skipped_total"], [({}, 10)])
        self.assertEqual(stats["timecoin_peer_pushes_skipped_total"], [({}, 1)])
        self.assertEqual(stats["timecoin_peer_send_paused"], [({}, 1)])
        peer.transport.producer.resumeProducing()
        peer.dataReceived(encode_frame(m.GetData((self.tx.txid,))))
        self.assertEqual(written(peer)[-1], m.TxMessage(self.tx.raw))

    def test_peer_over_budget_too_long_is_cut(self):
        peer = self.ready_peer()
        config = self.node.service.config
        peer.transport.producer.pauseProducing()
        self.node.reactor.advance(config.send_stall_timeout - 0.1)
        self.assertFalse(peer.transport.disconnecting)
        self.node.reactor.advance(0.2)
        self.assertTrue(peer.transport.disconnecting)
        self.assertEqual(self.node.service.send_account.disconnects["send buffer stalled"], 1)
        self.assertEqual(self.node.service.list_banned(), [])

    def test_resumed_in_time_is_kept(self):
        peer = self.ready_peer()
        config = self.node.service.config
        peer.transport.producer.pauseProducing()
        self.node.reactor.advance(config.send_stall_timeout / 2)
        peer.transport.producer.resumeProducing()
        self.node.reactor.advance(config.send_stall_timeout)
        self.assertFalse(peer.transport.disconnecting)
        self.assertEqual(self.node.service.send_account.queued, 0)

    def test_writes_beyond_the_budget_cut_the_peer(self):
        peer = self.ready_peer()
        account = self.node.service.send_account
        peer.transport.producer.pauseProducing()
        ping = len(encode_frame(m.Ping(1)))
        sent = 0
        while peer.send(m.Ping(1)):
            sent += 1
        self.assertTrue(peer.transport.disconnecting)
        self.assertEqual(sent, self.node.service.config.max_send_buffer // ping)
        self.assertEqual(account.disconnects["send buffer full"], 1)
        self.assertEqual(account.queued, 0)

    def test_node_budget_cuts_the_largest_queue(self):
        self.node.service.send_account.max_total = 3 * TRANSPORT_BUFFER
        first = self.ready_peer(40000)
        self.identity = PrivateKey.generate()
        second = self.ready_peer(40001)
        for peer in (first, second):
            peer.transport.producer.pauseProducing()
        while not first.transport.disconnecting and not second.transport.disconnecting:
            first.send(m.Ping(1))
        self.assertTrue(first.transport.disconnecting)
        self.assertFalse(second.transport.disconnecting)
        self.assertEqual(self.node.service.send_account.disconnects["node send budget"], 1)


class Metrics(ReadyPeers):
    def test_limit_metrics_exported_with_labels(self):
        from prometheus_client import CollectorRegistry, generate_latest

        from timecoin.node.metrics import _labelled
        service = self.node.service

        class Collector:
            def collect(self):
                return _labelled(service.statistics())

        peer = self.ready_peer()
        peer.drop("idle timeout")
        registry = CollectorRegistry()
        registry.register(Collector())
        text = generate_latest(registry).decode()
        self.assertIn('timecoin_peer_disconnects_total{reason="idle timeout"} 1.0', text)
        self.assertIn("timecoin_peer_send_buffer_bytes 0.0", text)
        self.assertIn('timecoin_peer_connections{direction="inbound"} 1.0', text)
        self.assertIn("timecoin_peer_in_flight 0.0", text)


class NetworkGroups(unittest.TestCase):
    def test_groups(self):
        self.assertEqual(network_group("10.1.2.3"), network_group("10.1.200.9"))
        self.assertNotEqual(network_group("10.1.2.3"), network_group("10.2.2.3"))
        self.assertNotEqual(network_group("127.0.0.2"), network_group("127.0.0.3"))
        self.assertEqual(network_group("::ffff:10.1.2.3"), network_group("10.1.9.9"))
        self.assertEqual(network_group("2001:db8:1::1"), network_group("2001:db8:ffff::2"))
        self.assertEqual(network_group("::1"), "::1")


def candidate(peer_id, group, connected_at, ready=True, ping_ms=None, last_useful=None):
    return Candidate(peer_id, group, connected_at, ready, ping_ms, last_useful)


class EvictionRules(unittest.TestCase):
    def setUp(self):
        self.evictor = Evictor(P2PConfig(protect_by_group=1, protect_by_ping=1,
                                         protect_by_useful=1), secret=b"k" * 16)

    def test_silent_connection_goes_first(self):
        peers = [candidate(1, "a", 0.0), candidate(2, "b", 1.0, ready=False),
                 candidate(3, "b", 2.0, ready=False), candidate(4, "c", 3.0, ready=False)]
        self.assertEqual(self.evictor.select(peers), 2)  # oldest silent of the largest group

    def test_youngest_of_the_most_crowded_group(self):
        peers = [candidate(n, "crowd", float(n)) for n in range(1, 9)]
        peers += [candidate(10, "x", 0.5), candidate(11, "y", 0.6)]
        self.assertEqual(self.evictor.select(peers), 8)

    def test_fast_and_useful_peers_protected(self):
        peers = [candidate(n, "crowd", float(n)) for n in range(1, 9)]
        peers[7].ping_ms = 0.1
        peers[6].last_useful = 50.0
        peers += [candidate(20, "x", 0.0), candidate(21, "y", 0.1)]
        self.assertEqual(self.evictor.select(peers), 6)

    def test_nothing_to_evict(self):
        self.assertIsNone(self.evictor.select([]))
        self.assertIsNone(self.evictor.select([candidate(1, "a", 0.0)]))


class EvictionOnMemoryNode(ReadyPeers):
    config = P2PConfig(max_peers=2, max_per_ip=8, protect_by_group=0, protect_by_ping=0,
                       protect_by_useful=0)

    def test_masternode_never_evicted(self):
        masternode = self.ready_peer(40000)
        self.node.host.protected.add(self.identity.pubkey)
        self.identity = PrivateKey.generate()
        other = self.ready_peer(40001)
        self.identity = PrivateKey.generate()
        second = self.ready_peer(40004)
        # two plain peers fill max_peers = 2 (the masternode's link does not count)
        newcomer = self.node.inbound("127.0.0.1", 40002)
        self.assertIsNotNone(newcomer)
        self.assertTrue(other.transport.disconnecting or second.transport.disconnecting)
        self.assertFalse(masternode.transport.disconnecting)
        for peer in (other, second):
            if peer.transport.disconnecting:
                peer.connectionLost(None)
        # Now the masternode, a plain peer and a newcomer: never the masternode.
        self.assertIsNotNone(self.node.inbound("127.0.0.1", 40003))
        self.assertFalse(masternode.transport.disconnecting)
        self.assertEqual(self.node.service.send_account.disconnects["evicted"], 2)

    def test_links_to_masternodes_do_not_count_against_max_peers(self):
        protected = []
        for port in (40000, 40001, 40005):
            protected.append(self.ready_peer(port))
            self.node.host.protected.add(self.identity.pubkey)
            self.identity = PrivateKey.generate()
        self.assertIsNotNone(self.node.inbound("127.0.0.1", 40002))
        self.assertFalse(any(p.transport.disconnecting for p in protected))
        self.assertEqual(self.node.service.send_account.disconnects["evicted"], 0)

    def test_full_of_protected_peers_refuses(self):
        # Two plain peers, both protected from eviction by recent usefulness.
        config = P2PConfig(max_peers=2, max_per_ip=8, protect_by_group=0, protect_by_ping=0,
                           protect_by_useful=2)
        self.node.service.config = config
        self.node.service.evictor = Evictor(config)
        for port in (40000, 40001):
            self.ready_peer(port).mark_useful()
            self.identity = PrivateKey.generate()
        self.assertIsNone(self.node.inbound("127.0.0.1", 40002))
        self.assertEqual(self.node.service.send_account.disconnects["refused full"], 1)

    def test_per_group_limit(self):
        self.node.service.config = P2PConfig(max_per_ip=8, max_inbound_per_group=2)
        self.assertIsNotNone(self.node.inbound("10.7.0.1", 1))
        self.assertIsNotNone(self.node.inbound("10.7.0.2", 1))
        self.assertIsNone(self.node.inbound("10.7.9.9", 1))
        self.assertIsNotNone(self.node.inbound("10.8.0.1", 1))


class HostilePeersOverSockets(unittest.TestCase):
    @defer.inlineCallbacks
    def test_peer_that_never_reads_stays_bounded_and_is_cut(self):
        config = P2PConfig(max_per_ip=64, ping_interval=3600.0, max_send_buffer=2**20,
                           send_stall_timeout=3.0)
        node = yield start_node(self, config=config)
        tx = make_tx(3)
        node.host.txs[tx.txid] = tx.raw
        reader = yield connect(node.listen_port(), ScriptedPeer())
        close_at_end(self, reader)
        yield reader.ready
        reader.transport.pauseProducing()  # never reads its socket again
        request = m.GetData((tx.txid,) * m.MAX_INV)
        [server] = node.connections()
        # The bound: the transport's buffer, the budget, and one answer's worth.
        bound = TRANSPORT_BUFFER + config.max_send_buffer + len(encode_frame(m.TxMessage(tx.raw)))
        peak = []

        def send_within_rate_limit_and_measure():
            buffered = node.send_account.queued
            transport = server.transport
            if transport.connected:
                # The transport's own queue (Twisted internals, read for this test only).
                actual = len(transport.dataBuffer) - transport.offset + transport._tempDataLen
                peak.append(max(buffered, actual - TRANSPORT_BUFFER))
                reader.send(request)
            return not node.connections()

        yield wait_until(reactor, send_within_rate_limit_and_measure, timeout=30, interval=0.05)
        self.assertTrue(peak)
        self.assertLessEqual(max(peak), bound)
        self.assertGreater(node.send_account.getdata_skipped, 0)
        reasons = node.send_account.disconnects
        self.assertEqual(reasons["send buffer full"] + reasons["send buffer stalled"], 1)
        self.assertEqual(node.list_banned(), [])

    @defer.inlineCallbacks
    def test_silent_sockets_from_eight_addresses_do_not_keep_an_honest_peer_out(self):
        config = P2PConfig(max_peers=50, max_per_ip=8, ping_interval=3600.0)
        node = yield start_node(self, config=config)
        port = node.listen_port()
        silent = []
        for a in range(2, 10):
            for _ in range(8):
                endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port,
                                              bindAddress=(f"127.0.0.{a}", 0))
                raw = yield connect(port, RawPeer(), endpoint)
                close_at_end(self, raw)
                silent.append(raw)
        yield wait_until(reactor, lambda: node.connection_counts()["inbound"] == 50)
        self.assertEqual(len(silent), 64)
        honest = yield connect(port, ScriptedPeer())
        close_at_end(self, honest)
        yield honest.ready
        yield wait_until(reactor, lambda: node.peer_count() == 1)
        self.assertEqual(node.peer_info()[0]["pubkey"], honest.identity.pubkey.hex())
        self.assertLessEqual(node.connection_counts()["inbound"], 50)
        self.assertGreaterEqual(node.send_account.disconnects["evicted"], 15)
