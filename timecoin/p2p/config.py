"""Settings of the peer-to-peer network, with the defaults of the ``[network]`` section."""

from dataclasses import dataclass

from timecoin.p2p.framing import COMPRESS_THRESHOLD, DEFAULT_MAX_MESSAGE_SIZE

#: The default txid budget of a peer is this many txids per ``inv`` message
#: it may send (10,000 txids/s at ``rate_limit_tx`` 1000, burst 20,000:
#: above what one node finalizes a second, so an honest peer never reaches it).
INV_TXIDS_PER_MESSAGE = 10


@dataclass(frozen=True)
class P2PConfig:
    """Limits and timers of :class:`~timecoin.p2p.service.PeerNetworkService`.

    The first four come from the node's configuration file; the rest are
    sensible fixed defaults that tests and library users may override.
    """

    max_peers: int = 50
    rate_limit_tx: int = 1000
    rate_limit_blocks: int = 100
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    #: Inbound connections accepted from one IP address.
    max_per_ip: int = 8
    handshake_timeout: float = 10.0
    idle_timeout: float = 300.0
    ping_interval: float = 60.0
    #: Pings (and pongs) accepted per second from one peer, burst 4x.
    rate_limit_ping: float = 5.0
    compress_threshold: int = COMPRESS_THRESHOLD
    #: First ban lasts this long; each repeat offence doubles it, up to ``ban_max``.
    ban_base: float = 600.0
    ban_max: float = 7 * 86400.0
    #: Txids remembered per peer as already known to it.
    known_inventory_size: int = 50_000
    #: Transactions kept to answer getdata after a broadcast.
    relay_cache_size: int = 10_000
    #: Peer addresses kept (memory and database).
    max_known_addresses: int = 5000
    #: Addresses sent in reply to one getaddr.
    addr_reply_size: int = 250
    #: Seconds before an unanswered getdata may be sent to another peer.
    getdata_timeout: float = 30.0
    #: Retry delays of outbound seed connections.
    reconnect_initial: float = 1.0
    reconnect_max: float = 300.0
    user_agent: str = "timecoin"
    #: Outbound connections the node tries to keep, dialling learned addresses.
    target_outbound: int = 8
    #: Seconds between attempts to fill outbound slots (0 < interval).
    discovery_interval: float = 30.0
    # -- the masternode mesh (see timecoin.p2p.mesh) --
    #: Keep a link to every masternode an address is known for.
    masternode_mesh: bool = True
    #: Seconds between mesh ticks (they also run soon after new addresses).
    mesh_interval: float = 5.0
    #: Mesh connection attempts under way at once.
    mesh_dials: int = 16
    #: Seconds before an unreachable address is tried again by the mesh.
    mesh_retry: float = 60.0
    # -- memory bounds (see doc/limits.md) --
    #: Bytes queued to one peer beyond the transport's own buffer before it is cut.
    max_send_buffer: int = 8 * 2**20
    #: Seconds a peer may stay over its send budget (paused) before it is cut.
    send_stall_timeout: float = 30.0
    #: Bytes queued to all peers together; beyond it the largest queue is cut.
    max_total_send_buffer: int = 64 * 2**20
    #: Txids requested and not yet delivered, all peers together.
    max_in_flight: int = 100_000
    #: Txids requested from one peer and not yet delivered.
    max_in_flight_per_peer: int = 5_000
    #: Txids a peer may announce a second (burst 2x) before the excess is
    #: dropped unrequested; None: ``INV_TXIDS_PER_MESSAGE`` per ``rate_limit_tx``.
    rate_limit_inv_txids: int | None = None
    #: Entries of per-peer inventory tables, all peers together: each peer's
    #: table holds ``min(known_inventory_size, peer_state_budget // max_peers)``.
    peer_state_budget: int = 1_000_000
    # -- inbound eviction (see doc/limits.md) --
    #: Inbound connections accepted from one network group (see timecoin.p2p.eviction).
    max_inbound_per_group: int = 16
    #: Protected from eviction: peers of this many distinct network groups...
    protect_by_group: int = 4
    #: ...this many with the lowest ping...
    protect_by_ping: int = 8
    #: ...and this many that most recently sent a new transaction or a finality message.
    protect_by_useful: int = 4

    @property
    def inv_txid_rate(self):
        """Txids a second one peer may announce (see :mod:`timecoin.p2p.ratelimit`)."""
        if self.rate_limit_inv_txids is not None:
            return self.rate_limit_inv_txids
        return INV_TXIDS_PER_MESSAGE * self.rate_limit_tx

    @property
    def known_inventory_per_peer(self):
        """The capacity of each peer's known-inventory table under the node budget."""
        return max(1, min(self.known_inventory_size,
                          self.peer_state_budget // max(1, self.max_peers)))
