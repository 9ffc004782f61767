"""Assembling a node from options: checks first, then the services.

:func:`prepare` does every check that can fail before anything starts (the
network, the config, the data directory, the keys) and raises
:class:`StartupError` or :class:`~timecoin.node.config.ConfigError` with one line.
:func:`build_node` composes the node and its listeners; it never touches the
global reactor, which is passed in.
"""

import os
from dataclasses import dataclass, field

from twisted.application.service import Service
from twisted.internet.endpoints import serverFromString
from twisted.internet.testing import MemoryReactor
from twisted.logger import Logger
from zope.interface import implementer

from timecoin.api.guard import connection_cap
from timecoin.api.site import build_site, remove_cookie, write_cookie
from timecoin.consensus.snowball import SnowballParams
from timecoin.finality.blocks import BlockService
from timecoin.finality.catchup import FinalitySync
from timecoin.finality.local import LocalFinality
from timecoin.finality.snapshot_server import SnapshotServer
from timecoin.finality.snowball import SnowballFinality
from timecoin.interfaces import IListeningService
from timecoin.ledger.genesis import make_genesis
from timecoin.ledger.keys import KeyFileError, PrivateKey
from timecoin.ledger.networks import DEVNET, get_network
from timecoin.ledger.registry import MasternodeRegistry
from timecoin.node import config as configuration
from timecoin.node.blocks import NodeBlocks
from timecoin.node.service import Node, registry_from_meta
from timecoin.node.snapshots import NodeSnapshots
from timecoin.node.verify import InlineVerifier, ProcessVerifier
from timecoin.p2p.config import P2PConfig
from timecoin.p2p.service import PeerNetworkService
from timecoin.p2p.tls import TLS_PEM_NAME, client_tls_options, ensure_tls_certificate
from timecoin.storage.background import StorageCheck
from timecoin.storage.store import Storage


class StartupError(Exception):
    """The node cannot start; the message says why in one line."""


@dataclass
class NodeOptions:
    """What the command line gives the daemon (``None``: take the config or default)."""

    network: str = "devnet"
    datadir: str | None = None
    config_file: str | None = None
    p2p: str | None = None
    api: str | None = None
    peers: list = field(default_factory=list)
    masternode_key: str | None = None
    log_level: str | None = None
    #: How a fresh node joins: "snapshot" or "full" (None: ``[sync] mode``).
    sync: str | None = None


@dataclass
class Prepared:
    """Everything checked and loaded before any service starts."""

    network: object
    datadir: str
    config: dict
    genesis: object
    identity: object
    is_masternode: bool
    p2p: str
    api: str
    peers: list


def prepare(options):
    try:
        network = get_network(options.network)
    except ValueError as e:
        raise StartupError(str(e)) from None
    datadir = options.datadir or network.default_datadir()
    if options.datadir is None:
        os.makedirs(datadir, mode=0o700, exist_ok=True)
    if not os.path.isdir(datadir):
        raise StartupError(f"data directory {datadir} does not exist")
    if not os.access(datadir, os.R_OK | os.W_OK | os.X_OK):
        raise StartupError(f"data directory {datadir} is not readable and writable")
    overrides = {}
    for key in ("p2p", "api", "masternode_key", "log_level"):
        if getattr(options, key):
            overrides[("node", key)] = getattr(options, key)
    if options.peers:
        overrides[("node", "peers")] = list(options.peers)
    if options.sync:
        overrides[("sync", "mode")] = options.sync
    config = configuration.resolve(network.name, options.config_file, datadir, overrides)
    node_cfg = config["node"]
    p2p = node_cfg.get("p2p") or _default_p2p(network, datadir)
    api = node_cfg.get("api") or f"tcp:{network.api_port}:interface=127.0.0.1"
    check_endpoint("API", api)
    check_endpoint("P2P", p2p, created=os.path.join(datadir, TLS_PEM_NAME))
    # Only now, with everything checked, may files be written (the node key).
    genesis = make_genesis(network, node_cfg["devnet_masternodes"])
    identity = _identity(network, datadir, node_cfg.get("masternode_key"),
                         joins_others=bool(node_cfg.get("peers")))
    is_masternode = identity.pubkey in genesis.masternodes
    return Prepared(network, datadir, config, genesis, identity, is_masternode, p2p, api,
                    list(node_cfg.get("peers", [])))


def check_endpoint(what, description, created=None):
    """Parse a listening endpoint string on a ``MemoryReactor`` (nothing listens,
    nothing is written); raise :class:`StartupError` with one line if it is
    not one. ``created``: a TLS key file the node creates itself, whose
    absence is no error."""
    if created is not None and description.startswith("ssl:") and created in description \
            and not os.path.exists(created):
        return
    try:
        serverFromString(MemoryReactor(), description)
    except (ValueError, TypeError, KeyError, OSError) as e:
        raise StartupError(f"{what} endpoint {description!r} is not valid: {e}") from None
    except Exception as e:  # an endpoint plugin's own error (a bad key file, say)
        raise StartupError(f"{what} endpoint {description!r} is not valid: "
                           f"{type(e).__name__}: {e}") from None


def _identity(network, datadir, key_file, joins_others):
    """The masternode key if given; a devnet node started alone is the lone
    masternode (dev key 0); otherwise the node's own key from the datadir."""
    if key_file:
        try:
            return PrivateKey.load(key_file)
        except KeyFileError as e:
            raise StartupError(str(e)) from None
    if network is DEVNET and not joins_others:
        return PrivateKey.devnet(0)
    path = os.path.join(datadir, "node.key")
    if not os.path.exists(path):
        PrivateKey.generate().save(path, network.network_id)
    try:
        return PrivateKey.load(path)
    except KeyFileError as e:
        raise StartupError(str(e)) from None


def _default_p2p(network, datadir):
    if network.tls_default:
        pem = os.path.join(datadir, TLS_PEM_NAME)
        return f"ssl:{network.p2p_port}:privateKey={pem}"
    return f"tcp:{network.p2p_port}"


def p2p_config(config):
    """The peer network's settings from the ``[network]`` section."""
    net = config["network"]
    return P2PConfig(
        max_peers=net["max_peers"], rate_limit_tx=net["rate_limit_tx"],
        rate_limit_blocks=net["rate_limit_blocks"], max_message_size=net["max_message_size"],
        max_per_ip=net["max_peers_per_ip"], handshake_timeout=float(net["handshake_timeout_s"]),
        idle_timeout=float(net["idle_timeout_s"]),
        max_send_buffer=net["max_send_buffer_bytes"],
        send_stall_timeout=float(net["send_stall_timeout_s"]),
        max_total_send_buffer=net["max_total_send_buffer_bytes"],
        max_in_flight=net["max_in_flight"], max_in_flight_per_peer=net["max_in_flight_per_peer"],
        peer_state_budget=net["peer_state_budget"],
        max_inbound_per_group=net["max_inbound_per_group"],
    )


def build_peer_network(reactor, prepared, node):
    """The peer network: TLS when the P2P endpoint is ``ssl:`` (the default on
    testnet and mainnet), with a certificate created in the datadir if needed."""
    client_tls = None
    if prepared.p2p.startswith("ssl:"):
        pem = ensure_tls_certificate(prepared.datadir)
        client_tls = client_tls_options(pem)
    return PeerNetworkService(reactor, node, prepared.p2p, prepared.peers,
                              p2p_config(prepared.config), client_tls)


def open_storage(reactor, prepared):
    return Storage(reactor, os.path.join(prepared.datadir, "chain.sqlite3"))


@implementer(IListeningService)
class ListenerService(Service):
    """Listens on an endpoint string while running; ``port`` is the listening port."""

    log = Logger()

    def __init__(self, reactor, description, factory, what):
        self._reactor = reactor
        self.description = description
        self.factory = factory
        self.what = what
        self.port = None
        self.failure = None

    def startService(self):
        super().startService()
        d = serverFromString(self._reactor, self.description).listen(self.factory)
        d.addCallbacks(self._listening, self._failed)
        return d

    def _listening(self, port):
        self.port = port
        host = port.getHost()
        self.log.info("{what} listening on {host}:{port}", what=self.what,
                      host=getattr(host, "host", host), port=getattr(host, "port", ""))
        return port

    def _failed(self, failure):
        # Kept for the owner to report (the daemon exits with it as one line).
        self.failure = failure

    def stopService(self):
        super().stopService()
        if self.port is not None:
            port, self.port = self.port, None
            return port.stopListening()


def build_finality(reactor, prepared, rng=None, registry=None):
    """A lone masternode decides alone; otherwise Snowball polls the active set
    of ``registry`` (an ``IMasternodeRegistry``; None: the genesis one), by weight.

    ``rng`` (a ``random.Random``) draws Snowball's samples; None: a fresh one.
    """
    if registry is None:
        registry = MasternodeRegistry.from_genesis(prepared.genesis)
    weights = registry.active_set()
    if list(weights) == [prepared.identity.pubkey]:
        return LocalFinality(reactor)
    avalanche = prepared.config["consensus.avalanche"]
    return SnowballFinality(reactor, SnowballParams.from_config(avalanche), weights,
                            prepared.identity.pubkey, avalanche["query_timeout_ms"], rng=rng)


def build_block_service(reactor, prepared, node, storage, finality):
    """The BFT block service over the node's chain, signing with its key."""
    host = NodeBlocks(reactor, node.chain, node.block_ledger, node.state, node.journal,
                      storage, finality, node.proofs, node.mempool,
                      peers=node.peer_network, snapshots=node.snapshots, apply_host=node)
    network = prepared.network
    return BlockService(reactor, host, network.network_id, network.block_interval_s,
                        prepared.identity, min_validators=network.min_masternodes)


#: File descriptors kept free for the database (SQLite's file, WAL, shared
#: memory and temporary files, the peer database) and for logs and listeners.
RESERVED_FOR_STORAGE = 32


def reserved_descriptors(config):
    """Descriptors the API must leave free: storage, every peer connection, and
    the signature workers' pipes."""
    return (RESERVED_FOR_STORAGE + config["network"]["max_peers"]
            + 3 * config["validation"]["signature_workers"])


def build_node(reactor, prepared, storage, meta, stop=None, rng=None, blocks=True):
    """The node service with its API listener, peer network, finality and
    block service.

    ``rng`` seeds Snowball's sampling (the simulator passes a seeded one);
    ``blocks=False`` leaves the block service out (tests of finality alone:
    the chain then stays where storage left it).
    """
    registry = registry_from_meta(prepared.genesis, meta)
    finality = build_finality(reactor, prepared, rng, registry)
    workers = prepared.config["validation"]["signature_workers"]
    verifier = ProcessVerifier(reactor, workers) if workers else InlineVerifier()
    check = StorageCheck(reactor, storage.path, needed=not meta.checked, expected=meta.count)
    node = Node(reactor, prepared.network, prepared.genesis, prepared.config, storage, meta,
                prepared.identity, finality=finality, verifier=verifier, storage_check=check,
                registry=registry)
    credentials = [write_cookie(prepared.datadir)]
    api_cfg = prepared.config["api"]
    if "rpcuser" in api_cfg and "rpcpassword" in api_cfg:
        credentials.append((api_cfg["rpcuser"], api_cfg["rpcpassword"]))
    cap = connection_cap(api_cfg["max_connections"], reserved_descriptors(prepared.config))
    site = build_site(node, credentials, stop, max_connections=cap)
    api = ListenerService(reactor, prepared.api, site, "API")
    api.setName("api")
    api.setServiceParent(node)
    peers = build_peer_network(reactor, prepared, node)
    peers.setServiceParent(node)
    node.peer_network = peers
    node.events.attach(peers)
    finality.attach(peers, node)
    # Every node serves its journal; nodes with other masternodes also pull.
    sync = FinalitySync(reactor, node, finality, prepared.genesis.masternodes,
                        prepared.identity.pubkey)
    sync.attach(peers)
    sync.setServiceParent(node)
    node.finality_sync = sync
    # Snapshots: cut every [sync] snapshot_interval blocks, served to peers.
    max_message = prepared.config["network"]["max_message_size"]
    node.snapshots = NodeSnapshots(reactor, prepared.genesis, storage, node.chain, node.proofs,
                                   prepared.config["sync"]["snapshot_interval"], max_message)
    SnapshotServer(node.snapshots, max_message).attach(peers)
    if blocks:
        node.block_service = build_block_service(reactor, prepared, node, storage, finality)
        node.block_service.attach(peers)
        node.block_service.setServiceParent(node)
    node.cookie_cleanup = lambda: remove_cookie(prepared.datadir)
    return node
