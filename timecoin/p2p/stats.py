"""The metrics of the peer network's limits, one or more per limit.

:func:`peer_statistics` reads them from a
:class:`~timecoin.p2p.service.PeerNetworkService` when the node's metrics
are scraped; each is ``(name, kind, doc, [(labels, value), ...])`` with kind
``"gauge"`` or ``"counter"``. ``doc/limits.md`` lists them with their
limits.
"""

from timecoin.p2p.traffic import traffic_statistics


def peer_statistics(network):
    """The limit metrics of ``network`` (see the module docstring)."""
    account = network.send_account
    in_flight = network.relay.in_flight
    peers = list(network.connections())
    known = sum(len(peer.known_inventory) for peer in peers)
    counts = network.connection_counts()
    relay = network.relay
    return traffic_statistics(network.traffic) + [
        ("timecoin_relay_cache_lookups_total", "counter",
         "getdata txids looked up in the relay's cache of announced transactions, by result",
         [({"result": "hit"}, relay.cache_hits), ({"result": "miss"}, relay.cache_misses)]),
        ("timecoin_peer_connections", "gauge", "Open peer connections, by direction",
         [({"direction": d}, n) for d, n in sorted(counts.items())]),
        ("timecoin_peer_send_buffer_bytes", "gauge",
         "Bytes queued to peers over their send budget (a lower bound)", [({}, account.queued)]),
        ("timecoin_peer_send_paused", "gauge",
         "Peers whose send buffer is over budget (no getdata served, no pushes)",
         [({}, len(account.paused))]),
        ("timecoin_peer_getdata_skipped_total", "counter",
         "Txids of getdata not served because the peer's send buffer was full",
         [({}, account.getdata_skipped)]),
        ("timecoin_peer_pushes_skipped_total", "counter",
         "Pushed transactions announced by inv instead, to peers over budget",
         [({}, account.pushes_skipped)]),
        ("timecoin_peer_in_flight", "gauge", "Txids requested from peers and not delivered",
         [({}, len(in_flight))]),
        ("timecoin_peer_in_flight_forgotten_total", "counter",
         "Requests forgotten because the node's in-flight table was full",
         [({}, in_flight.forgotten)]),
        ("timecoin_peer_in_flight_refused_total", "counter",
         "Announced txids not requested: their peer had its maximum outstanding",
         [({}, in_flight.refused)]),
        ("timecoin_peer_inv_txids_dropped_total", "counter",
         "Announced txids dropped unrequested: beyond their peer's txid budget",
         [({}, network.relay.inv_txids_dropped)]),
        ("timecoin_peer_receive_holds_total", "counter",
         "Times a connection stopped reading: its peer was over its txid budget",
         [({}, account.receive_holds)]),
        ("timecoin_peer_state_entries", "gauge",
         "Entries of per-peer inventory tables and the in-flight table",
         [({}, known + len(in_flight))]),
        ("timecoin_peer_disconnects_total", "counter",
         "Peer connections closed or refused, by reason",
         [({"reason": reason}, n) for reason, n in sorted(account.disconnects.items())]),
    ]
