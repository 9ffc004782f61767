"""N complete devnet masternodes on one simulated clock and network.

Each node is built exactly as the daemon builds one (``prepare`` and
``build_node`` of :mod:`timecoin.node.assembly`), with three differences: its
reactor is a :class:`~timecoin.sim.hosts.HostReactor`, its storage is the
synchronous :class:`~timecoin.testing.fakes.SyncStorage` (with SQLite's
``synchronous=OFF``: a simulated stop is always clean), and Snowball samples
with an RNG drawn from the cluster's seed. The genesis registers all N nodes
as masternodes (``[node] devnet_masternodes``), as ``timecoin devnet`` does.

Topology: ``"all"`` (every pair connected), an int ``d`` (a ring plus random
chords, about ``d`` links per node: nodes keep at most ``max_peers`` peers, so
a large network is not a clique) or a list of ``(i, j)`` pairs; the node with
the larger index dials the other (its ``--peer`` seeds), so a restarted node
and its peers reconnect through the node's own seed logic.
"""

import os
import random
import shutil
import tempfile

from twisted.logger import Logger

from timecoin.ledger.keys import PrivateKey
from timecoin.node.assembly import NodeOptions, build_node, p2p_config, prepare
from timecoin.node.join import join_by_snapshot, wants_snapshot_join
from timecoin.sim.byzantine import VoteRewriter
from timecoin.sim.clock import SimClock
from timecoin.sim.hosts import HostReactor
from timecoin.sim.network import SimNetwork
from timecoin.testing.fakes import SyncStorage

P2P_PORT = 9333
#: Where the data directories go when it exists (else the temporary directory).
MEMORY_FILESYSTEM = "/dev/shm"
#: Simulated start time (the devnet genesis time).
START_TIME = 1_767_225_600.0


class SimTimeout(AssertionError):
    """A condition the simulation waited for did not hold in simulated time."""


def host_ip(index):
    """The IP address of node ``index``: a loopback address, so that nothing could
    leave this machine even if a simulated connection reached a real reactor
    (each loopback address is its own network group for eviction)."""
    return f"127.0.{index // 250 + 1}.{index % 250 + 1}"


def random_topology(size, degree, rng):
    """Edges of a ring plus random chords: connected, about ``degree`` per node."""
    edges = {(min(i, (i + 1) % size), max(i, (i + 1) % size)) for i in range(size)} \
        if size > 2 else {(0, 1)} if size == 2 else set()
    want = min(size * degree // 2, size * (size - 1) // 2)
    while len(edges) < want:
        i, j = rng.randrange(size), rng.randrange(size)
        if i != j:
            edges.add((min(i, j), max(i, j)))
    return sorted(edges)


class SimNode:
    """One simulated host: its address, data directory and key; ``node`` is the
    running :class:`~timecoin.node.service.Node` (None while stopped)."""

    def __init__(self, index, ip, datadir, key_file, reactor):
        self.index = index
        self.ip = ip
        self.datadir = datadir
        self.key_file = key_file
        self.reactor = reactor
        self.node = None
        self.seeds = []

    @property
    def address(self):
        return f"{self.ip}:{P2P_PORT}"


class Cluster:
    """``size`` masternodes of one devnet in one process (see the module docstring).

    ``seed`` seeds every random choice; ``conditions`` are the default
    :class:`~timecoin.sim.network.LinkConditions`; ``config_text`` is TOML
    appended to every node's configuration; ``basedir`` holds the data
    directories (default: ``/dev/shm`` if writable, else the temporary
    directory). Call :meth:`close` when done.
    """

    log = Logger()

    def __init__(self, size, seed=0, topology="all", conditions=None, config_text="",
                 basedir=None, masternodes=None):
        self.size = size
        #: The genesis registers nodes 0 .. masternodes - 1; the others are plain nodes.
        self.masternodes = size if masternodes is None else masternodes
        self.seed = seed
        self.rng = random.Random(seed)
        # Twisted's reconnection backoff jitters with the global ``random``:
        # seeded here, so reconnect times are part of the seeded run.
        random.seed(self.rng.getrandbits(64))
        self.clock = SimClock(START_TIME)
        self.network = SimNetwork(self.clock, self.rng.getrandbits(64), conditions)
        if basedir is None and os.access(MEMORY_FILESYSTEM, os.W_OK):
            basedir = MEMORY_FILESYSTEM  # SQLite's fsyncs cost nothing there
        self._basedir = tempfile.mkdtemp(prefix="timecoin-sim-", dir=basedir)
        self.edges = self._edges(topology)
        self.hosts = []
        for i in range(size):
            datadir = os.path.join(self._basedir, f"node{i}")
            os.mkdir(datadir, 0o700)
            key_file = os.path.join(datadir, "masternode.key")
            PrivateKey.devnet(i).save(key_file)
            with open(os.path.join(datadir, "timecoin.toml"), "w") as f:
                f.write(self._config(self.masternodes, config_text, size))
            ip = host_ip(i)
            self.hosts.append(SimNode(i, ip, datadir, key_file, HostReactor(self.network, ip)))
        for i, j in self.edges:
            self.hosts[max(i, j)].seeds.append(self.hosts[min(i, j)].address)
        self._start_listeners = []

    def add_start_listener(self, callback):
        """``callback(index, node)`` is called for every node built (at each
        start and restart), before the node starts."""
        self._start_listeners.append(callback)

    def _edges(self, topology):
        if topology == "all":
            return [(i, j) for j in range(self.size) for i in range(j)]
        if isinstance(topology, int):
            return random_topology(self.size, topology, self.rng)
        edges = sorted({(min(i, j), max(i, j)) for i, j in topology if i != j})
        for i, j in edges:
            if not 0 <= i < j < self.size:
                raise ValueError(f"edge {(i, j)} names a node outside 0..{self.size - 1}")
        return edges

    @staticmethod
    def _config(masternodes, extra, size):
        # As ``timecoin devnet`` configures its nodes, with room for every peer.
        return (f"[node]\ndevnet_masternodes = {masternodes}\n\n[validation]\n"
                f"signature_workers = 0\n\n[network]\nmax_peers = {size + 16}\n" + extra)

    def neighbours(self, index):
        """The indices of the nodes ``index`` is linked to by the topology."""
        return sorted({j for i, j in self.edges if i == index}
                      | {i for i, j in self.edges if j == index})

    # -- life ------------------------------------------------------------------
    @property
    def nodes(self):
        """The running nodes' :class:`~timecoin.node.service.Node`, by index
        (None for a stopped node)."""
        return [h.node for h in self.hosts]

    def running(self):
        return [h for h in self.hosts if h.node is not None]

    def start(self, connect_timeout=30.0, indices=None):
        """Start every node (or those of ``indices``) and run until each has
        its running neighbours as peers."""
        for host in self.hosts:
            if indices is None or host.index in indices:
                self.start_node(host.index)
        self.wait_connected(connect_timeout)

    def _prepare(self, host, seeds):
        return prepare(NodeOptions(
            network="devnet", datadir=host.datadir, p2p=f"tcp:{P2P_PORT}:interface={host.ip}",
            api=f"tcp:0:interface={host.ip}", masternode_key=host.key_file, peers=list(seeds)))

    def join_node(self, index, sync="snapshot", timeout=600.0, fetcher_options=None):
        """Start node ``index`` (not running, with an empty datadir) as a
        joining node does: by ``sync`` ``"snapshot"``, the newest certified
        snapshot is fetched from its neighbours and installed first
        (:func:`~timecoin.node.join.join_by_snapshot`), then the node starts
        and block sync takes over; by ``"full"`` it starts at once and
        replays every block. Returns the node."""
        host = self.hosts[index]
        seeds = [self.hosts[j].address for j in self.neighbours(index)
                 if self.hosts[j].node is not None]
        if sync == "snapshot":
            prepared = self._prepare(host, seeds)
            storage = SyncStorage(host.reactor, os.path.join(host.datadir, "chain.sqlite3"))
            meta = storage.open_now(prepared.genesis)
            storage.run_db(lambda conn: conn.execute("PRAGMA synchronous=OFF"))
            if not wants_snapshot_join(prepared, meta):
                raise ValueError(f"node {index} cannot join by snapshot")
            try:
                self.wait(join_by_snapshot(host.reactor, prepared, storage,
                                           p2p_config(prepared.config), fetcher_options),
                          timeout)
            finally:
                storage.close_now()
        return self.start_node(index, seeds)

    def start_node(self, index, seeds=None):
        """Build and start node ``index`` over its data directory (``seeds``:
        the addresses it dials; default: the topology's)."""
        host = self.hosts[index]
        if host.node is not None:
            raise ValueError(f"node {index} is running")
        prepared = self._prepare(host, host.seeds if seeds is None else seeds)
        storage = SyncStorage(host.reactor, os.path.join(host.datadir, "chain.sqlite3"))
        meta = storage.open_now(prepared.genesis)
        storage.run_db(lambda conn: conn.execute("PRAGMA synchronous=OFF"))
        node = build_node(host.reactor, prepared, storage, meta,
                          rng=random.Random(self.rng.getrandbits(64)))
        for callback in self._start_listeners:
            callback(index, node)
        node.startService()
        host.node = node
        return node

    def stop_node(self, index, timeout=30.0):
        """Stop node ``index`` cleanly (its datadir stays for :meth:`restart_node`)."""
        host = self.hosts[index]
        node, host.node = host.node, None
        self.wait(node.stopService(), timeout)

    def restart_node(self, index, timeout=60.0):
        """Stop node ``index`` if running, start it again dialling all its
        neighbours, and run until it has them as peers."""
        if self.hosts[index].node is not None:
            self.stop_node(index)
        seeds = [self.hosts[j].address for j in self.neighbours(index)]
        node = self.start_node(index, seeds)
        want = len([j for j in self.neighbours(index) if self.hosts[j].node is not None])
        self.run_until(lambda: node.queries.peer_count() >= want, timeout,
                       f"node {index} reconnected to {want} peers")
        return node

    def close(self):
        """Stop every running node and delete the data directories."""
        for host in self.hosts:
            if host.node is not None:
                try:
                    self.stop_node(host.index)
                except SimTimeout:
                    self.log.warn("node {i} did not stop in simulated time", i=host.index)
        shutil.rmtree(self._basedir, ignore_errors=True)

    # -- running the clock --------------------------------------------------------
    @property
    def now(self):
        """Simulated seconds since the start."""
        return self.clock.seconds() - START_TIME

    def run(self, seconds):
        """Let ``seconds`` of simulated time pass."""
        self.clock.advance(seconds)

    def run_until(self, predicate, timeout=60.0, what="the condition"):
        """Run until ``predicate()`` holds; :class:`SimTimeout` after ``timeout``
        simulated seconds."""
        if not self.clock.run_until(self.clock.seconds() + timeout, predicate):
            raise SimTimeout(f"{what} not met within {timeout} simulated seconds")

    def wait(self, d, timeout=60.0):
        """Run until Deferred ``d`` fires; its result (its failure is raised)."""
        results = []
        d.addBoth(results.append)
        self.run_until(lambda: bool(results), timeout, "the Deferred")
        result = results[0]
        if hasattr(result, "raiseException"):
            result.raiseException()
        return result

    def wait_connected(self, timeout=30.0):
        """Run until each running node is connected to its running neighbours."""
        def connected():
            for host in self.running():
                want = sum(1 for j in self.neighbours(host.index) if self.hosts[j].node)
                if host.node.queries.peer_count() < want:
                    return False
            return True
        self.run_until(connected, timeout, "every node connected to its neighbours")

    # -- transactions ----------------------------------------------------------
    def submit(self, index, tx):
        """Submit ``tx`` at node ``index``; a Deferred (txid or TxRejected)."""
        return self.hosts[index].node.submit(tx)

    def status(self, index, txid):
        """Node ``index``'s ``gettransaction`` dict of ``txid`` (None if unknown)."""
        d = self.hosts[index].node.queries.transaction_status(txid)
        return self.wait(d, 0)

    def statuses(self, txid):
        """The status string of ``txid`` on every running node (None: unknown)."""
        out = []
        for host in self.running():
            status = self.status(host.index, txid)
            out.append(status and status["status"])
        return out

    def settled(self, txid):
        """True once ``txid`` is final (finalized, confirmed or rejected) on every
        running node."""
        return all(s in ("finalized", "confirmed", "rejected") for s in self.statuses(txid))

    def wait_settled(self, txids, timeout=60.0):
        """Run until every txid is finalized or rejected on every running node."""
        self.run_until(lambda: all(self.settled(t) for t in txids), timeout,
                       "every transaction settled on every node")

    def set_hashes(self):
        """The UTXO set hash of every running node."""
        return [h.node.state.set_hash() for h in self.running()]

    def outcome(self, txids):
        """What a run decided, comparable between runs: per transaction the
        status, rejection reason and finality time (simulated ms) on each node,
        and each node's UTXO set hash."""
        report = {}
        for txid in txids:
            rows = []
            for host in self.running():
                status = self.status(host.index, txid) or {}
                rows.append((status.get("status"), status.get("reason"),
                             status.get("finality_ms")))
            report[txid.hex()] = rows
        return {"transactions": report, "set_hashes": self.set_hashes(),
                "time": round(self.now, 6)}

    # -- adversaries -------------------------------------------------------------
    def make_byzantine(self, index, strategy):
        """Replace node ``index``'s Snowball answers by ``strategy``'s
        (an :class:`~timecoin.sim.byzantine.IVoteStrategy`); returns the rewriter."""
        rewriter = VoteRewriter(strategy)
        self.network.filters[self.hosts[index].ip] = rewriter
        return rewriter

    def make_honest(self, index):
        self.network.filters.pop(self.hosts[index].ip, None)
