"""The handshake, as explicit states: connecting -> hello -> ready.

Both sides send a :class:`~timecoin.p2p.messages.Hello` at once. On the
peer's hello a side checks network magic, protocol version and genesis, then
answers with an :class:`~timecoin.p2p.messages.Auth`: an Ed25519 signature, by
the key its hello named, over the *transcript* of this connection::

    BLAKE2b-256("timecoin-p2p-auth-v1" | magic | signer pubkey | verifier pubkey
                | signer nonce | verifier nonce
                | signer certificate fingerprint | verifier certificate fingerprint)

The verifier's nonce is a fresh challenge, so a signature cannot be replayed;
under TLS the SHA-256 fingerprints of both certificates as seen on *this*
connection bind it to the TLS session, so a relay in the middle (which must
present its own certificate to each side) cannot pass a signature on. Without
TLS the fingerprints are zero bytes. Once the peer's signature verifies the
connection is ready.

Each state owns one table from message kind to handler (see :class:`State`);
the connection routes every message through its state's table, in one place.
"""

import hashlib
import os
from types import MappingProxyType

from cryptography.hazmat.primitives.serialization import Encoding
from OpenSSL import SSL

from timecoin.ledger.keys import verify
from timecoin.p2p import messages as m

AUTH_DOMAIN = b"timecoin-p2p-auth-v1"
NO_CERTIFICATE = bytes(32)


def certificate_fingerprints(transport):
    """``(own, peer)`` SHA-256 fingerprints of the TLS certificates, zeros if none."""
    get_handle = getattr(transport, "getHandle", None)
    handle = get_handle() if get_handle is not None else None
    if not isinstance(handle, SSL.Connection):
        return NO_CERTIFICATE, NO_CERTIFICATE

    def fingerprint(cert):
        if cert is None:
            return NO_CERTIFICATE
        return hashlib.sha256(cert.public_bytes(Encoding.DER)).digest()

    return (fingerprint(handle.get_certificate(as_cryptography=True)),
            fingerprint(handle.get_peer_certificate(as_cryptography=True)))


def transcript(magic, signer_pubkey, verifier_pubkey, signer_nonce, verifier_nonce,
               signer_cert, verifier_cert):
    """The 32 bytes a side signs to prove its key on this connection."""
    return hashlib.blake2b(
        AUTH_DOMAIN + magic + signer_pubkey + verifier_pubkey + signer_nonce
        + verifier_nonce + signer_cert + verifier_cert, digest_size=32).digest()


class HandshakeRefused(Exception):
    """The peer is on another network, version or chain; ``code`` says which."""

    def __init__(self, code, message):
        super().__init__(code, message)
        self.code = code
        self.message = message


def check_hello(hello, network, genesis_hash, own_pubkey):
    """Raise :class:`HandshakeRefused` unless ``hello`` may proceed."""
    if hello.magic != network.magic:
        raise HandshakeRefused("wrong-network", f"this node is on {network.name}")
    if hello.protocol_version < m.MIN_PROTOCOL_VERSION:
        raise HandshakeRefused(
            "incompatible-version",
            f"protocol {hello.protocol_version} is older than {m.MIN_PROTOCOL_VERSION}")
    if hello.genesis_hash != genesis_hash:
        raise HandshakeRefused("wrong-genesis", "this node follows another genesis")
    if hello.pubkey == own_pubkey:
        raise HandshakeRefused("self-connection", "connected to itself")


class State:
    """One step of a connection's life, with the table of messages it accepts.

    ``handlers`` maps a message kind to ``handler(peer, message)``, which
    returns the next state, or None to stay in this one.
    :meth:`~timecoin.p2p.protocol.PeerProtocol.frameReceived` routes every
    message through the table of the connection's current state, and hands a
    kind the table lacks to :meth:`unexpected`.
    """

    name = "state"
    ready = False
    handlers = MappingProxyType({})

    def unexpected(self, peer, message):
        """A message this state does not accept: misbehaviour."""
        peer.misbehave(f"{m.kind_name(message.KIND)} during {self.name}")


def second_hello(peer, message):
    """A hello (or auth) once the peer's hello is in: misbehaviour."""
    peer.misbehave("second hello")
    return Closed()


class Connecting(State):
    """The transport is not connected yet; nothing can arrive."""

    name = "connecting"


class AwaitingHello(State):
    """Our hello is sent; the peer's is expected, and nothing else."""

    name = "hello"

    def __init__(self, own_nonce, ready):
        self.own_nonce = own_nonce
        self.next_state = ready
        self.handlers = {m.HELLO: self.on_hello}

    def on_hello(self, peer, message):
        host = peer.host
        try:
            check_hello(message, host.network, host.genesis_hash, host.identity.pubkey)
        except HandshakeRefused as e:
            peer.refuse(e.code, e.message)
            return Closed()
        peer.remote = message
        own_cert, peer_cert = certificate_fingerprints(peer.transport)
        identity = host.identity
        signed = transcript(host.network.magic, identity.pubkey, message.pubkey,
                            self.own_nonce, message.nonce, own_cert, peer_cert)
        peer.send(m.Auth(identity.sign(signed)))
        expected = transcript(host.network.magic, message.pubkey, identity.pubkey,
                              message.nonce, self.own_nonce, peer_cert, own_cert)
        return AwaitingAuth(expected, self.next_state)


class AwaitingAuth(State):
    """The peer's hello is checked; its signature over the transcript is expected."""

    name = "auth"

    def __init__(self, expected_transcript, ready):
        self.expected = expected_transcript
        self.next_state = ready
        self.handlers = {m.HELLO: second_hello, m.AUTH: self.on_auth}

    def on_auth(self, peer, message):
        if not verify(peer.remote.pubkey, self.expected, message.signature):
            peer.misbehave("bad handshake signature")
            return Closed()
        return self.next_state


def _answer_ping(peer, message):
    peer.send(m.Pong(message.nonce))


def _pong_received(peer, message):
    peer.pong_received(message.nonce)


def _reject_received(peer, message):
    peer.log.info("peer {peer} sent reject {code}: {text}", peer=peer.label,
                  code=message.code, text=message.message)


class Ready(State):
    """Handshake complete: the state every ready connection of a network shares.

    Its table holds the connection's own kinds (ping, pong, reject, and hello
    or auth again, which is misbehaviour) and whatever the network adds with
    :meth:`add_handler`. A kind nobody handles is ignored.
    """

    name = "ready"
    ready = True

    def __init__(self):
        self.handlers = {m.HELLO: second_hello, m.AUTH: second_hello, m.PING: _answer_ping,
                         m.PONG: _pong_received, m.REJECT: _reject_received}

    def add_handler(self, kind, handler):
        """Route ``kind`` to ``handler(peer, message)``; a kind has one handler."""
        if kind in self.handlers:
            raise ValueError(f"{m.kind_name(kind)} already has a handler")
        self.handlers[kind] = handler

    def unexpected(self, peer, message):
        pass


class Closed(State):
    """Closing or closed: whatever still arrives is ignored."""

    name = "closed"

    def unexpected(self, peer, message):
        pass


def new_nonce():
    """A fresh random challenge for a hello."""
    return os.urandom(m.NONCE_SIZE)
