"""The timecoin peer-to-peer wire protocol, usable from any Twisted program.

- :mod:`~timecoin.p2p.messages`: message kinds, their codecs and the registry;
- :mod:`~timecoin.p2p.framing`: length-prefixed, optionally compressed frames;
- :mod:`~timecoin.p2p.handshake`: the authenticated handshake states;
- :mod:`~timecoin.p2p.protocol`: one peer connection;
- :mod:`~timecoin.p2p.service`: the connection manager (``IPeerNetwork``);
- :mod:`~timecoin.p2p.host`: ``IPeerHost``, what the network needs from a node;
- :mod:`~timecoin.p2p.tls`: self-signed certificates and TLS options.

See ``doc/wire-protocol.md``.
"""

from timecoin.p2p.config import P2PConfig
from timecoin.p2p.host import IPeerHost, ObserverHost, SynchronousDatabase
from timecoin.p2p.messages import PROTOCOL_VERSION, register_message
from timecoin.p2p.protocol import PeerProtocol
from timecoin.p2p.service import PeerNetworkService, PeerSummary
from timecoin.p2p.tls import client_tls_options, ensure_tls_certificate, tls_server_description

__all__ = [
    "IPeerHost", "ObserverHost", "P2PConfig", "PROTOCOL_VERSION", "PeerNetworkService",
    "PeerProtocol",
    "PeerSummary", "SynchronousDatabase", "client_tls_options", "ensure_tls_certificate",
    "register_message", "tls_server_description",
]
