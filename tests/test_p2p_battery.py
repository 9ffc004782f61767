"""Bad input battery against a real listening PeerNetworkService on 127.0.0.1."""

import os
import struct
import zlib

from twisted.internet import defer, reactor
from twisted.internet.endpoints import SSL4ClientEndpoint
from twisted.trial import unittest

from tests.p2p_fakes import (
    GENESIS,
    FakePeerHost,
    RawPeer,
    ScriptedPeer,
    close_at_end,
    connect,
    start_node,
)
from timecoin.ledger.networks import TESTNET
from timecoin.p2p import messages as m
from timecoin.p2p.config import P2PConfig
from timecoin.p2p.framing import encode_frame
from timecoin.p2p.handshake import NO_CERTIFICATE, certificate_fingerprints
from timecoin.p2p.tls import client_tls_options, ensure_tls_certificate, tls_server_description
from timecoin.testing.waiting import wait_until

SMALL = P2PConfig(max_per_ip=64, ping_interval=3600.0, max_message_size=64 * 1024)


def frame(payload):
    return struct.pack("!I", len(payload)) + payload


class Refusals(unittest.TestCase):
    """A peer on another network, version or chain is told why and disconnected."""

    @defer.inlineCallbacks
    def refused_with(self, code, **hello_changes):
        node = yield start_node(self)
        peer = yield connect(node.listen_port(), ScriptedPeer(**hello_changes))
        close_at_end(self, peer)
        yield peer.lost
        rejects = [msg.code for msg in peer.messages if msg.KIND == m.REJECT]
        self.assertEqual(rejects, [code])
        self.assertNotIn(m.AUTH, peer.kinds())
        self.assertEqual(node.peer_count(), 0)
        self.assertEqual(node.list_banned(), [])

    def test_wrong_magic(self):
        return self.refused_with("wrong-network", magic=TESTNET.magic)

    def test_wrong_version(self):
        return self.refused_with("incompatible-version", protocol_version=0)

    def test_other_genesis(self):
        return self.refused_with("wrong-genesis", genesis_hash=bytes(32))

    @defer.inlineCallbacks
    def test_newer_version_accepted(self):
        node = yield start_node(self)
        peer = yield connect(node.listen_port(), ScriptedPeer(protocol_version=9))
        close_at_end(self, peer)
        yield peer.ready
        yield wait_until(reactor, lambda: node.peer_count() == 1)


class Misbehaviour(unittest.TestCase):
    """Each case ends with the connection closed and 127.0.0.1 banned."""

    @defer.inlineCallbacks
    def assert_banned(self, node, peer):
        yield peer.lost
        self.assertEqual([b["address"] for b in node.list_banned()], ["127.0.0.1"])
        yield wait_until(reactor, lambda: not any(node.connection_counts().values()))

    @defer.inlineCallbacks
    def ready_peer(self, config=None):
        node = yield start_node(self, config=config or SMALL)
        peer = yield connect(node.listen_port(), ScriptedPeer())
        close_at_end(self, peer)
        yield peer.ready
        return node, peer

    @defer.inlineCallbacks
    def raw_peer(self, config=None):
        node = yield start_node(self, config=config or SMALL)
        peer = yield connect(node.listen_port(), RawPeer())
        close_at_end(self, peer)
        return node, peer

    @defer.inlineCallbacks
    def test_bad_signature(self):
        node = yield start_node(self)
        peer = yield connect(node.listen_port(), ScriptedPeer(sign=False))
        close_at_end(self, peer)
        yield self.assert_banned(node, peer)

    @defer.inlineCallbacks
    def test_unknown_message_kind(self):
        node, peer = yield self.ready_peer()
        peer.transport.write(frame(b"\x00" + struct.pack("<H", 0x7777)))
        yield self.assert_banned(node, peer)

    @defer.inlineCallbacks
    def test_reserved_but_unimplemented_kind(self):
        node, peer = yield self.ready_peer()
        peer.transport.write(frame(b"\x00" + struct.pack("<H", m.SNAPSHOT)))
        yield self.assert_banned(node, peer)

    @defer.inlineCallbacks
    def test_garbage_after_handshake(self):
        node, peer = yield self.ready_peer()
        peer.transport.write(os.urandom(3000))
        yield self.assert_banned(node, peer)

    @defer.inlineCallbacks
    def test_second_hello(self):
        node, peer = yield self.ready_peer()
        peer.send(peer.hello)
        yield self.assert_banned(node, peer)

    @defer.inlineCallbacks
    def test_message_before_handshake(self):
        node, peer = yield self.raw_peer()
        peer.transport.write(encode_frame(m.Ping(1)))
        yield self.assert_banned(node, peer)

    @defer.inlineCallbacks
    def test_maximum_length_header(self):
        node, peer = yield self.raw_peer()
        peer.transport.write(b"\xff\xff\xff\xff")
        yield self.assert_banned(node, peer)

    @defer.inlineCallbacks
    def test_decompression_bomb(self):
        node, peer = yield self.ready_peer()
        bomb = zlib.compress(struct.pack("<H", m.TX) + bytes(50 * 1024 * 1024), 9)
        self.assertLess(len(bomb), SMALL.max_message_size)
        peer.transport.write(frame(b"\x01" + bomb))
        yield self.assert_banned(node, peer)

    @defer.inlineCallbacks
    def test_truncated_frame_then_close(self):
        node, peer = yield self.ready_peer()
        peer.transport.write(encode_frame(m.Ping(3))[:-3])
        peer.transport.loseConnection()
        yield peer.lost
        yield wait_until(reactor, lambda: not any(node.connection_counts().values()))
        self.assertEqual(node.list_banned(), [])

    @defer.inlineCallbacks
    def test_header_split_at_every_offset(self):
        node, peer = yield self.ready_peer()
        data = b"".join(encode_frame(m.Ping(n)) for n in range(12))
        for cut in range(len(data)):
            reactor.callLater(0, peer.transport.write, data[cut:cut + 1])
        yield wait_until(reactor, lambda: sum(1 for k in peer.kinds() if k == m.PONG) == 12)
        self.assertEqual([msg.nonce for msg in peer.messages if msg.KIND == m.PONG],
                         list(range(12)))
        self.assertEqual(node.peer_count(), 1)

    @defer.inlineCallbacks
    def test_flood_does_not_starve_another_peer(self):
        config = P2PConfig(max_per_ip=64, ping_interval=3600.0)
        node = yield start_node(self, config=config)
        good = yield connect(node.listen_port(), ScriptedPeer())
        close_at_end(self, good)
        yield good.ready
        flooder = yield connect(node.listen_port(), ScriptedPeer())
        close_at_end(self, flooder)
        yield flooder.ready
        junk = frame(os.urandom(config.max_message_size))
        for _ in range(4):
            flooder.transport.write(junk)
        for n in range(5):
            good.send(m.Ping(100 + n))
        yield flooder.lost
        yield wait_until(reactor, lambda: sum(1 for k in good.kinds() if k == m.PONG) == 5)
        self.assertEqual(node.peer_count(), 1)
        self.assertEqual(node.peer_info()[0]["pubkey"], good.identity.pubkey.hex())
        self.assertEqual([b["address"] for b in node.list_banned()], ["127.0.0.1"])

    @defer.inlineCallbacks
    def test_tx_flood_is_banned(self):
        config = P2PConfig(max_per_ip=64, ping_interval=3600.0, rate_limit_tx=5)
        node, peer = yield self.ready_peer(config)
        for n in range(20):
            peer.send(m.Inv((bytes([n]) * 32,)))
        yield self.assert_banned(node, peer)

    @defer.inlineCallbacks
    def test_banned_address_refused_at_connect(self):
        node = yield start_node(self)
        yield node.set_ban("127.0.0.1", 60)
        peer = yield connect(node.listen_port(), RawPeer())
        close_at_end(self, peer)
        yield peer.lost
        self.assertEqual(bytes(peer.received), b"")


class Tls(unittest.TestCase):
    @defer.inlineCallbacks
    def tls_node(self, name="node"):
        datadir = os.path.join(self.mktemp(), name)
        pem = ensure_tls_certificate(datadir)
        node = yield start_node(self, FakePeerHost(network=TESTNET, genesis_hash=GENESIS),
                                listen=tls_server_description(0, pem, "127.0.0.1"),
                                client_tls=client_tls_options(pem))
        return node, pem

    @defer.inlineCallbacks
    def test_tls_nodes_handshake(self):
        a, _ = yield self.tls_node("a")
        b, _ = yield self.tls_node("b")
        b.connect(f"127.0.0.1:{a.listen_port()}")
        yield wait_until(reactor, lambda: a.peer_count() == 1 and b.peer_count() == 1)
        # Both certificates entered the transcript, seen the same way from both ends.
        a_own, a_peer = certificate_fingerprints(a.get_peer(a.peers()[0].peer_id).transport)
        b_own, b_peer = certificate_fingerprints(b.get_peer(b.peers()[0].peer_id).transport)
        self.assertNotIn(NO_CERTIFICATE, (a_own, a_peer))
        self.assertEqual((a_own, a_peer), (b_peer, b_own))

    @defer.inlineCallbacks
    def test_certificate_created_once(self):
        datadir = self.mktemp()
        path = ensure_tls_certificate(datadir)
        with open(path, "rb") as f:
            first = f.read()
        self.assertEqual(ensure_tls_certificate(datadir), path)
        with open(path, "rb") as f:
            self.assertEqual(f.read(), first)
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
        yield defer.succeed(None)

    @defer.inlineCallbacks
    def test_client_without_certificate(self):
        node, _ = yield self.tls_node()
        endpoint = SSL4ClientEndpoint(reactor, "127.0.0.1", node.listen_port(),
                                      client_tls_options())
        peer = yield connect(None, ScriptedPeer(network=TESTNET), endpoint)
        close_at_end(self, peer)
        yield peer.ready
        yield wait_until(reactor, lambda: node.peer_count() == 1)

    @defer.inlineCallbacks
    def test_plaintext_to_tls_port_fails_cleanly(self):
        node, _ = yield self.tls_node()
        peer = yield connect(node.listen_port(), ScriptedPeer(network=TESTNET))
        close_at_end(self, peer)
        yield peer.lost
        self.assertEqual(peer.messages, [])
        self.assertEqual(node.peer_count(), 0)
