"""The handshake states: which messages each accepts, and how the rest are refused.

Driven on a memory reactor: frames are fed to a connection by hand and its
replies read back from a ``StringTransport``.
"""

import os

from twisted.trial import unittest

from tests.p2p_fakes import GENESIS
from tests.test_p2p_liveness import MemoryNode, connected_pair
from timecoin.finality.messages import Subscribe
from timecoin.ledger.keys import PrivateKey
from timecoin.ledger.networks import DEVNET
from timecoin.p2p import messages as m
from timecoin.p2p.framing import FrameReceiver, decode_frame_payload, encode_frame
from timecoin.p2p.handshake import (
    AwaitingAuth,
    AwaitingHello,
    Closed,
    Connecting,
    Ready,
    transcript,
)

#: A message of every kind a peer may send before the handshake is over,
#: except hello and auth themselves.
NOT_HANDSHAKE = [m.Ping(1), m.Pong(1), m.GetAddr(), m.Inv((bytes(32),)),
                 m.Reject("some-code", "text"), Subscribe()]


class _Frames(FrameReceiver):
    """Splits what a connection wrote into messages."""

    MAX_LENGTH = 16 * 1024 * 1024

    def __init__(self):
        self.messages = []

    def stringReceived(self, payload):
        self.messages.append(decode_frame_payload(payload))


def written(peer):
    frames = _Frames()
    frames.dataReceived(peer.transport.value())
    return frames.messages


def hello_from(identity, nonce):
    return m.Hello(DEVNET.magic, m.PROTOCOL_VERSION, GENESIS, 1, identity.pubkey, nonce, 0,
                   "state-test")


class States(unittest.TestCase):
    def setUp(self):
        self.node = MemoryNode(self)
        self.identity = PrivateKey.generate()
        self.nonce = os.urandom(m.NONCE_SIZE)

    def assert_refused(self, peer, reason):
        """The connection was cut and its address banned for ``reason``."""
        self.assertTrue(peer.transport.disconnecting)
        [ban] = self.node.service.list_banned()
        self.assertEqual((ban["address"], ban["reason"]), ("127.0.0.1", reason))

    def awaiting_auth(self):
        peer = self.node.inbound()
        peer.dataReceived(encode_frame(hello_from(self.identity, self.nonce)))
        self.assertEqual(peer.state.name, "auth")
        return peer

    def ready(self):
        peer = self.awaiting_auth()
        own_hello = next(msg for msg in written(peer) if msg.KIND == m.HELLO)
        signed = transcript(DEVNET.magic, self.identity.pubkey, own_hello.pubkey, self.nonce,
                            own_hello.nonce, bytes(32), bytes(32))
        peer.dataReceived(encode_frame(m.Auth(self.identity.sign(signed))))
        self.assertTrue(peer.is_ready)
        self.assertEqual(self.node.service.peer_count(), 1)
        return peer

    def test_awaiting_hello_accepts_only_hello(self):
        for message in NOT_HANDSHAKE + [m.Auth(bytes(64))]:
            self.node.service.clear_banned()
            peer = self.node.inbound()
            self.assertEqual(peer.state.name, "hello")
            peer.dataReceived(encode_frame(message))
            self.assert_refused(peer, f"{m.kind_name(message.KIND)} during hello")
            peer.connectionLost(None)

    def test_awaiting_auth_accepts_only_auth(self):
        for message in NOT_HANDSHAKE:
            self.node.service.clear_banned()
            peer = self.awaiting_auth()
            peer.dataReceived(encode_frame(message))
            self.assert_refused(peer, f"{m.kind_name(message.KIND)} during auth")
            peer.connectionLost(None)

    def test_second_hello_while_awaiting_auth(self):
        peer = self.awaiting_auth()
        peer.dataReceived(encode_frame(hello_from(self.identity, self.nonce)))
        self.assert_refused(peer, "second hello")

    def test_bad_signature_while_awaiting_auth(self):
        peer = self.awaiting_auth()
        peer.dataReceived(encode_frame(m.Auth(bytes(64))))
        self.assert_refused(peer, "bad handshake signature")

    def test_ready_refuses_hello_and_auth(self):
        for message in (hello_from(self.identity, self.nonce), m.Auth(bytes(64))):
            self.node.service.clear_banned()
            peer = self.ready()
            peer.dataReceived(encode_frame(message))
            self.assert_refused(peer, "second hello")
            peer.connectionLost(None)

    def test_ready_answers_ping_and_passes_messages_on(self):
        peer = self.ready()
        seen = []
        self.node.service.register_handler(m.SUBSCRIBE, lambda pid, msg: seen.append(msg))
        self.node.service.register_handler(m.GETADDR, lambda pid, msg: seen.append(msg))
        peer.transport.clear()
        peer.dataReceived(encode_frame(m.Ping(42)) + encode_frame(Subscribe())
                          + encode_frame(m.GetAddr()))
        self.assertEqual(seen, [Subscribe(), m.GetAddr()])
        replies = written(peer)
        self.assertEqual(replies[0], m.Pong(42))
        self.assertEqual([msg.KIND for msg in replies[1:]], [m.ADDR])
        self.assertFalse(peer.transport.disconnecting)

    def test_ready_ignores_kinds_nobody_handles(self):
        peer = self.ready()
        peer.transport.clear()
        peer.dataReceived(encode_frame(Subscribe()) + encode_frame(m.Reject("x", "y")))
        self.assertEqual(written(peer), [])
        self.assertFalse(peer.transport.disconnecting)
        self.assertEqual(self.node.service.list_banned(), [])

    def test_pong_completes_a_ping_between_ready_peers(self):
        a, b, client, server, pump, clock = connected_pair(self)
        rtts = []
        server.ping().addCallback(rtts.append)
        clock.advance(0.5)
        pump.flush()
        self.assertEqual(rtts, [500.0])
        for peer in (client, server):
            peer.transport.abortConnection()
        pump.flush()


class Tables(unittest.TestCase):
    """What each state's table holds."""

    def test_handshake_tables(self):
        ready = Ready()
        self.assertEqual(set(Connecting().handlers), set())
        self.assertEqual(set(AwaitingHello(bytes(32), ready).handlers), {m.HELLO})
        self.assertEqual(set(AwaitingAuth(bytes(32), ready).handlers), {m.HELLO, m.AUTH})
        self.assertEqual(set(ready.handlers), {m.HELLO, m.AUTH, m.PING, m.PONG, m.REJECT})
        self.assertEqual(set(Closed().handlers), set())

    def test_ready_table_of_a_network(self):
        node = MemoryNode(self)
        table = node.service.ready_state.handlers
        self.assertEqual(set(table), {m.HELLO, m.AUTH, m.PING, m.PONG, m.REJECT, m.INV,
                                      m.GETDATA, m.TX, m.GETADDR, m.ADDR})
        node.service.register_handler(m.SUBSCRIBE, lambda pid, msg: None)
        node.service.register_handler(m.SUBSCRIBE, lambda pid, msg: None)
        self.assertIn(m.SUBSCRIBE, table)

    def test_a_kind_has_one_handler(self):
        ready = Ready()
        ready.add_handler(m.SUBSCRIBE, lambda peer, message: None)
        self.assertRaises(ValueError, ready.add_handler, m.SUBSCRIBE, lambda p, msg: None)
        self.assertRaises(ValueError, ready.add_handler, m.PING, lambda p, msg: None)
