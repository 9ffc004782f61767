"""``twistd timecoin``: the daemon's options and ``makeService``.

This module and the command line's entry point are the only places that use
the global reactor. Anything that stops start-up (a bad option or config, an
unusable data directory or database, a port in use) prints one line to stderr
and exits with status 1, without a traceback.
"""

import gc
import os
import sys

from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.logger import (
    FilteringLogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogPublisher,
)
from twisted.python import usage

import timecoin
import twisted
from timecoin.interfaces import IListeningService
from timecoin.node.assembly import (
    NodeOptions,
    StartupError,
    build_node,
    open_storage,
    p2p_config,
    prepare,
)
from timecoin.node.config import ConfigError
from timecoin.node.join import join_by_snapshot, wants_snapshot_join
from timecoin.node.verify import WorkerStartError
from timecoin.storage.check_db import check_database
from timecoin.storage.store import StorageError

#: The daemon process's garbage-collector thresholds (CPython's are 700, 10,
#: 10). A node keeps many objects alive (cached outputs, pending transactions,
#: Deferreds of waiting calls), and young collections every 700 allocations
#: cost it a third of its CPU at saturation; see doc/decisions.md.
GC_THRESHOLDS = (20_000, 20, 20)


class Options(usage.Options):
    """Options of ``twistd timecoin`` (see the specification's daemon section)."""

    optParameters = [
        ["network", None, "devnet", "devnet, testnet or mainnet"],
        ["datadir", None, None, "data directory (default: the network's)"],
        ["config", None, None, "TOML config file (default: <datadir>/timecoin.toml)"],
        ["p2p", None, None, "P2P listening endpoint string"],
        ["api", None, None, "API listening endpoint string"],
        ["masternode-key", None, None, "key file of this node's masternode"],
        ["log-level", None, None, "debug, info, warn, error or critical"],
        ["sync", None, None, "how a fresh node joins: snapshot (default) or full"],
    ]
    optFlags = [
        ["check-db", None, "check the database in full, print a report and exit "
                           "(0: no damage, 1: damage) without starting the node"],
    ]

    def __init__(self):
        super().__init__()
        self["peers"] = []

    def opt_version(self):
        """Print timecoin's version and exit."""
        sys.stdout.write(f"timecoin {timecoin.__version__} (Twisted {twisted.__version__})\n")
        sys.exit(0)

    def opt_peer(self, address):
        """HOST:PORT of a peer to keep connected to (repeatable)."""
        self["peers"].append(address)

    def node_options(self):
        return NodeOptions(
            network=self["network"], datadir=self["datadir"], config_file=self["config"],
            p2p=self["p2p"], api=self["api"], peers=list(self["peers"]),
            masternode_key=self["masternode-key"], log_level=self["log-level"],
            sync=self["sync"],
        )


def fail(message):
    """Print one line to stderr and leave with status 1."""
    stderr = sys.__stderr__ or sys.stderr  # twistd redirects sys.stderr into the log
    stderr.write(f"timecoin: error: {message}\n")
    stderr.flush()
    raise SystemExit(1)


class DaemonService(MultiService):
    """Starts the node (an ``IDaemonNode``). Anything that fails during start
    (a listener that cannot listen, workers that cannot be spawned) undoes
    what was started, the database's thread included, and ends the process
    at once with one line."""

    def __init__(self, node, log_level=None):
        super().__init__()
        self.node = node
        self.log_level = log_level or "info"
        node.setServiceParent(self)
        node.on_storage_damage = self._storage_damaged

    def startService(self):
        # twistd's observers take every level: filter always (the default is
        # info). Logging begins after startService under twist (before it
        # under twistd): filter once the reactor runs, when it has begun in both.
        from twisted.internet import reactor

        reactor.callWhenRunning(apply_log_level, self.log_level)
        try:
            super().startService()
        except WorkerStartError as e:
            self._abandon(str(e))
        except Exception as e:  # noqa: BLE001 - any failure ends start-up with one line
            self._abandon(f"start-up failed: {type(e).__name__}: {e}")
        for child in self.node:
            if IListeningService.providedBy(child) and child.failure is not None:
                self._abandon(f"{child.what} cannot listen on {child.description}: "
                              f"{child.failure.getErrorMessage()}")

    def _abandon(self, message):
        """Undo the partial start, remove the cookie, exit 1 with ``message``."""
        self.running = 0
        try:
            self.node.abandon_start()
        finally:
            if self.node.cookie_cleanup is not None:
                self.node.cookie_cleanup()
        fail(message)
        peers = self.node.peer_network
        if peers is not None and peers.started is not None:
            peers.started.addErrback(self._peer_network_failed)

    def _storage_damaged(self, problem):
        """The background storage check found damage: stop, exit 1, one line."""
        from twisted.internet import reactor

        stderr = sys.__stderr__ or sys.stderr
        stderr.write(f"timecoin: error: {problem}\n")
        stderr.flush()
        reactor.addSystemEventTrigger("after", "shutdown", os._exit, 1)
        reactor.stop()

    def _peer_network_failed(self, failure):
        """The P2P port is bound after the ban list loads: a failure ends the
        process (status 1) once the node has stopped and flushed."""
        from twisted.internet import reactor

        stderr = sys.__stderr__ or sys.stderr
        description = self.node.peer_network.listen_description
        stderr.write(f"timecoin: error: P2P cannot listen on {description}: "
                     f"{failure.getErrorMessage()}\n")
        stderr.flush()
        reactor.addSystemEventTrigger("after", "shutdown", os._exit, 1)
        reactor.stop()

    def stopService(self):
        d = super().stopService()
        cleanup = self.node.cookie_cleanup
        if cleanup is not None:
            d.addBoth(lambda r: (cleanup(), r)[1])
        return d


class SnapshotJoinService(MultiService):
    """A fresh node started with snapshot sync: fetch and install the newest
    certified snapshot (:func:`~timecoin.node.join.join_by_snapshot`), then
    open the storage again and run the node built from it under a
    :class:`DaemonService`. A join that fails ends the process with one line."""

    def __init__(self, reactor, prepared, storage):
        super().__init__()
        self._reactor = reactor
        self._prepared = prepared
        self._storage = storage
        self.daemon = None

    def startService(self):
        super().startService()
        self._reactor.callWhenRunning(apply_log_level,
                                      self._prepared.config["node"].get("log_level") or "info")
        d = join_by_snapshot(self._reactor, self._prepared, self._storage,
                             p2p_config(self._prepared.config))
        d.addCallback(lambda _: self._storage.close())
        d.addCallback(lambda _: self._start_node())
        d.addErrback(self._failed)

    @defer.inlineCallbacks
    def _start_node(self):
        storage = open_storage(self._reactor, self._prepared)
        meta = yield storage.open(self._prepared.genesis)
        node = build_node(self._reactor, self._prepared, storage, meta, stop=self._reactor.stop)
        self.daemon = DaemonService(node, self._prepared.config["node"].get("log_level"))
        self.daemon.setServiceParent(self)

    def _failed(self, failure):
        stderr = sys.__stderr__ or sys.stderr
        stderr.write(f"timecoin: error: joining by snapshot failed: "
                     f"{failure.getErrorMessage()}\n")
        stderr.flush()
        self._reactor.addSystemEventTrigger("after", "shutdown", os._exit, 1)
        self._reactor.stop()


class LevelFilter(FilteringLogObserver):
    """An observer of twistd's, seeing only events at or above a level."""

    def __init__(self, observer, level):
        super().__init__(observer, [LogLevelFilterPredicate(defaultLogLevel=level)])
        self.wrapped = observer


def apply_log_level(level):
    """Filter what twistd's observers receive (they exist once logging began);
    applied again, it replaces the threshold instead of stacking filters."""
    threshold = LogLevel.levelWithName(level)
    for observer in list(globalLogPublisher._observers):
        inner = observer.wrapped if isinstance(observer, LevelFilter) else observer
        globalLogPublisher.removeObserver(observer)
        globalLogPublisher.addObserver(LevelFilter(inner, threshold))


def check_db(options):
    """``--check-db``: print the report of every check; exit 0 or 1."""
    prepared = prepare(options.node_options())
    path = os.path.join(prepared.datadir, "chain.sqlite3")
    results = check_database(path, prepared.genesis.hash)
    stdout = sys.__stdout__ or sys.stdout
    for result in results:
        stdout.write(result.line() + "\n")
    damaged = [r for r in results if r.problem is not None]
    stdout.write(f"{path}: {'damaged' if damaged else 'no damage found'}\n")
    stdout.flush()
    raise SystemExit(1 if damaged else 0)


def tune_garbage_collector():
    """The daemon owns its process: what start-up built is set aside for good
    (``gc.freeze``) and collections run less often. Reference counting still
    frees everything that is not in a cycle at once."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def makeService(options):
    from twisted.internet import reactor

    try:
        if options["check-db"]:
            check_db(options)
        prepared = prepare(options.node_options())
        storage = open_storage(reactor, prepared)
        meta = storage.open_now(prepared.genesis)
    except (ConfigError, StartupError, StorageError) as e:
        fail(str(e))
    if wants_snapshot_join(prepared, meta):
        return SnapshotJoinService(reactor, prepared, storage)
    node = build_node(reactor, prepared, storage, meta, stop=reactor.stop)
    tune_garbage_collector()
    return DaemonService(node, prepared.config["node"].get("log_level"))
