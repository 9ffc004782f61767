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
"""

import hashlib
import os

from cryptography.hazmat.primitives.serialization import Encoding
from OpenSSL import SSL

from timecoin.ledger.keys import verify
from timecoin.p2p import messages as m

AUTH_DOMAIN = b"timecoin-p2p-auth-v1"
_HANDSHAKE_KINDS = frozenset({m.HELLO, m.AUTH})
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
    """One step of a connection's life; ``on_message`` returns the next state."""

    name = "state"
    ready = False

    def on_message(self, peer, message):
        peer.misbehave(f"{m.kind_name(message.KIND)} during {self.name}")
        return self


class Connecting(State):
    """The transport is not connected yet; nothing can arrive."""

    name = "connecting"


class AwaitingHello(State):
    """Our hello is sent; the peer's is expected."""

    name = "hello"

    def __init__(self, own_nonce):
        self.own_nonce = own_nonce

    def on_message(self, peer, message):
        if not isinstance(message, m.Hello):
            return State.on_message(self, peer, message)
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
        return AwaitingAuth(expected)


class AwaitingAuth(State):
    """The peer's hello is checked; its signature over the transcript is expected."""

    name = "auth"

    def __init__(self, expected_transcript):
        self.expected = expected_transcript

    def on_message(self, peer, message):
        if isinstance(message, m.Hello):
            peer.misbehave("second hello")
            return Closed()
        if not isinstance(message, m.Auth):
            return State.on_message(self, peer, message)
        if not verify(peer.remote.pubkey, self.expected, message.signature):
            peer.misbehave("bad handshake signature")
            return Closed()
        return Ready()


class Ready(State):
    """Handshake complete: messages go to the connection's handlers."""

    name = "ready"
    ready = True

    def on_message(self, peer, message):
        if message.KIND in _HANDSHAKE_KINDS:
            peer.misbehave("second hello")
            return Closed()
        peer.dispatch(message)
        return self


class Closed(State):
    """Closing or closed: whatever still arrives is ignored."""

    name = "closed"

    def on_message(self, peer, message):
        return self


def new_nonce():
    return os.urandom(m.NONCE_SIZE)
