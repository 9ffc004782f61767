"""Test helpers for the peer network: a fake node and scripted peers."""

import os

from twisted.internet import defer, protocol, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint

from timecoin.ledger.keys import PrivateKey
from timecoin.ledger.networks import DEVNET
from timecoin.p2p import messages as m
from timecoin.p2p.config import P2PConfig
from timecoin.p2p.framing import FrameReceiver, decode_frame_payload, encode_frame
from timecoin.p2p.handshake import certificate_fingerprints, transcript
from timecoin.p2p.service import PeerNetworkService
from timecoin.testing.peers import GENESIS, FakePeerHost, make_tx  # noqa: F401, E402

LOCAL = "tcp:0:interface=127.0.0.1"
#: Generous per-IP limit: every test peer comes from 127.0.0.1.
TEST_CONFIG = P2PConfig(max_per_ip=64, ping_interval=3600.0)


@defer.inlineCallbacks
def start_node(case, host=None, listen=LOCAL, seeds=(), config=TEST_CONFIG, client_tls=None,
               relay=True):
    """A started PeerNetworkService on the real reactor, stopped at test end."""
    host = host or FakePeerHost()
    node = PeerNetworkService(reactor, host, listen, seeds, config, client_tls)
    if relay:
        host.on_accept.append(node.broadcast_tx)
    case.addCleanup(node.stopService)
    yield node.startService()
    return node


def node_address(node):
    return f"127.0.0.1:{node.listen_port()}"


class RawPeer(protocol.Protocol):
    """Sends whatever it is told and records what comes back and when it is closed."""

    def __init__(self):
        self.received = bytearray()
        self.lost = defer.Deferred()

    def dataReceived(self, data):
        self.received += data

    def connectionLost(self, reason):
        self.lost.callback(None)


class ScriptedPeer(FrameReceiver):
    """A peer that speaks the protocol by hand, so tests can bend it.

    ``hello_changes`` replace fields of its hello; ``sign=False`` sends a
    forged signature. ``ready`` fires when the other side's auth verified.
    """

    MAX_LENGTH = 16 * 1024 * 1024

    def __init__(self, network=DEVNET, genesis_hash=GENESIS, identity=None, sign=True,
                 **hello_changes):
        self.network = network
        self.identity = identity or PrivateKey.generate()
        self.nonce = os.urandom(32)
        fields = dict(magic=network.magic, protocol_version=m.PROTOCOL_VERSION,
                      genesis_hash=genesis_hash, best_height=1, pubkey=self.identity.pubkey,
                      nonce=self.nonce, listen_port=0, user_agent="scripted")
        fields.update(hello_changes)
        self.hello = m.Hello(**fields)
        self.sign = sign
        self.messages = []
        self.ready = defer.Deferred()
        self.lost = defer.Deferred()
        self.remote = None

    def connectionMade(self):
        self.send(self.hello)

    def send(self, message):
        self.transport.write(encode_frame(message))

    def stringReceived(self, payload):
        message = decode_frame_payload(payload)
        self.messages.append(message)
        if isinstance(message, m.Hello):
            self.remote = message
            own, theirs = certificate_fingerprints(self.transport)
            signed = transcript(self.network.magic, self.identity.pubkey, message.pubkey,
                                self.nonce, message.nonce, own, theirs)
            signature = self.identity.sign(signed) if self.sign else bytes(64)
            self.send(m.Auth(signature))
        elif isinstance(message, m.Auth) and not self.ready.called:
            self.ready.callback(self)

    def kinds(self):
        return [msg.KIND for msg in self.messages]

    def connectionLost(self, reason):
        self.lost.callback(None)


def connect(port, proto, endpoint=None):
    """Connect ``proto`` to 127.0.0.1:``port``; a Deferred firing with it."""
    endpoint = endpoint or TCP4ClientEndpoint(reactor, "127.0.0.1", port)
    return endpoint.connect(_OneShot(proto)).addCallback(lambda _: proto)


class _OneShot(protocol.Factory):
    def __init__(self, proto):
        self.proto = proto

    def buildProtocol(self, addr):
        return self.proto


def close_at_end(case, proto):
    """Make sure ``proto``'s connection is closed (and seen closed) at test end."""
    def close():
        if proto.transport is not None and proto.transport.connected:
            proto.transport.abortConnection()
        return proto.lost
    case.addCleanup(close)
