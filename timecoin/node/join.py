"""Joining a network by snapshot, before the node is built.

A fresh node (no block above the genesis in its database) started with
``[sync] mode = "snapshot"`` and peers to dial, that is not a genesis
masternode, first runs :func:`join_by_snapshot`: a peer network of its own
(it dials the node's peers and listens nowhere; ``ObserverHost`` with the
node's identity) and a :class:`~timecoin.finality.snapshot_fetch.SnapshotFetcher`
that installs the newest certified snapshot into the node's storage (one
transaction). Then the peer network stops, and the node is built from the
storage as at any start: its chain starts at the snapshot's block, and block
sync takes over from there. Nothing of the node's in-memory state predates
the snapshot, so nothing has to be reset.
"""

from twisted.internet import defer
from twisted.logger import Logger

import timecoin
from timecoin.finality.snapshot_fetch import SnapshotFetcher
from timecoin.node.snapshots import NodeSnapshots
from timecoin.p2p.host import ObserverHost
from timecoin.p2p.service import PeerNetworkService

log = Logger()


def wants_snapshot_join(prepared, meta):
    """True if this start should join by snapshot (see the module docstring)."""
    return (prepared.config["sync"]["mode"] == "snapshot" and bool(prepared.peers)
            and not prepared.is_masternode and meta.top_height == 0
            and meta.snapshot_base == 0)


@defer.inlineCallbacks
def join_by_snapshot(reactor, prepared, storage, p2p_config, fetcher_options=None):
    """Fetch and install the newest certified snapshot into ``storage`` (an
    opened ``ISnapshotStorage``); fires with the ``FetchedSnapshot``, or None
    if no peer serves one (the node then replays every block)."""
    host = ObserverHost(prepared.network, prepared.genesis.hash, timecoin.__version__)
    host.identity = prepared.identity
    network = PeerNetworkService(reactor, host, None, list(prepared.peers), p2p_config)
    installer = NodeSnapshots(reactor, prepared.genesis, storage, None, None, 0,
                              p2p_config.max_message_size)
    fetcher = SnapshotFetcher(reactor, prepared.genesis, installer, **(fetcher_options or {}))
    fetcher.attach(network)
    network.startService()
    fetcher.startService()
    log.info("joining by snapshot: asking {n} peers for their newest snapshot",
             n=len(prepared.peers))
    try:
        fetched = yield fetcher.finished
    finally:
        fetcher.stopService()
        yield network.stopService()
    if fetched is not None:
        log.info("joined by snapshot at block {height}; block sync continues from there",
                 height=fetched.height)
    return fetched
