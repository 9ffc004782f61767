"""TLS for peer connections (pyOpenSSL): a self-signed certificate per node.

Certificates only encrypt and bind the session; a peer's identity is the
Ed25519 key proven in the handshake, so no certificate authority is involved
and both sides accept any certificate. The server asks for the client's
certificate too (without verifying it) so that both fingerprints enter the
handshake transcript.
"""

import datetime
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from twisted.internet import ssl
from twisted.internet.endpoints import SSL4ServerEndpoint
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator
from zope.interface import implementer

TLS_PEM_NAME = "p2p-tls.pem"


def ensure_tls_certificate(datadir):
    """The path of ``<datadir>/p2p-tls.pem``, created (key and certificate) if missing."""
    path = os.path.join(datadir, TLS_PEM_NAME)
    if os.path.exists(path):
        return path
    os.makedirs(datadir, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "timecoin-node")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    pem += cert.public_bytes(serialization.Encoding.PEM)
    temporary = path + ".tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    os.replace(temporary, path)
    return path


def _escape(value):
    return value.replace("\\", "\\\\").replace(":", "\\:").replace("=", "\\=")


def tls_server_description(port, pem_path, interface=None):
    """A ``serverFromString`` description listening with TLS on ``port``."""
    description = f"ssl:{port}:privateKey={_escape(pem_path)}"
    if interface:
        description += f":interface={_escape(interface)}"
    return description


def client_tls_options(pem_path=None):
    """Client-side TLS options that accept any (self-signed) server certificate.

    With ``pem_path`` the client presents that certificate, so the handshake
    binds both certificates; without it, only the server's.
    """
    if pem_path is None:
        return ssl.CertificateOptions(verify=False)
    with open(pem_path, "rb") as f:
        return ssl.PrivateCertificate.loadPEM(f.read()).options()


@implementer(IOpenSSLServerConnectionCreator)
class RequestClientCertificate:
    """Wraps a server context factory so that it asks for (and accepts any) client cert."""

    def __init__(self, wrapped):
        self._wrapped = wrapped
        self._context = None

    def getContext(self):
        if self._context is None:
            context = self._wrapped.getContext()
            context.set_verify(SSL.VERIFY_PEER, lambda conn, cert, errno, depth, ok: True)
            self._context = context
        return self._context

    def serverConnectionForTLS(self, protocol):
        return SSL.Connection(self.getContext(), None)


def request_client_certificates(endpoint):
    """Make a TLS server endpoint from ``serverFromString`` ask for client certificates."""
    if isinstance(endpoint, SSL4ServerEndpoint):
        endpoint._sslContextFactory = RequestClientCertificate(endpoint._sslContextFactory)
    return endpoint
