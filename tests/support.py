"""Helpers for tests: devnet nodes in-process, transactions from the dev keys."""

import os
import tempfile

from twisted.internet import defer

from timecoin.cli.devnet import DEVNET_NODE_CONFIG
from timecoin.ledger.genesis import make_genesis
from timecoin.ledger.keys import PrivateKey
from timecoin.ledger.networks import DEVNET
from timecoin.ledger.tx import OutPoint, sign_transfer
from timecoin.node.assembly import NodeOptions, build_node, open_storage, prepare
from timecoin.node.service import Node
from timecoin.testing.fakes import ManualFinality, SyncStorage  # noqa: F401  (used by tests)
from timecoin.testing.waiting import wait_until

FEE = 10_000


def devnet_funding(index=0):
    """``(key, outpoint, amount)`` of dev key ``index``'s genesis output."""
    genesis = make_genesis(DEVNET)
    tx = genesis.txs[0]
    return PrivateKey.devnet(index), OutPoint(tx.txid, index), tx.outputs[index].amount


def transfer(key, prevouts, amounts_to, fee=FEE, total=None, network_id=DEVNET.network_id):
    """Sign a transfer spending ``prevouts`` (worth ``total``) to ``(amount, key_hash)``
    pairs, the change back to ``key``."""
    outputs = list(amounts_to)
    if total is not None:
        change = total - sum(a for a, _ in outputs) - fee
        if change > 0:
            outputs.append((change, key.key_hash))
    return sign_transfer(key, list(prevouts), outputs, network_id)


def make_datadir(testcase):
    path = tempfile.mkdtemp(prefix="timecoin-test-")
    testcase.addCleanup(_rmtree, path)
    return path


def _rmtree(path):
    for root, dirs, files in os.walk(path, topdown=False):
        for name in files:
            os.unlink(os.path.join(root, name))
        for name in dirs:
            os.rmdir(os.path.join(root, name))
    os.rmdir(path)


#: Statuses of an accepted transaction: ``finalized``, then ``confirmed`` once a
#: block holds it (a node on the real reactor commits one every 2 s).
ACCEPTED = ("finalized", "confirmed")


@defer.inlineCallbacks
def start_node(testcase, reactor, datadir=None, network="devnet", blocks=True, **options):
    """Start a node listening on 127.0.0.1 port 0; stopped at the end of the test
    (``blocks=False``: without the block service)."""
    datadir = datadir or make_datadir(testcase)
    options.setdefault("api", "tcp:0:interface=127.0.0.1")
    options.setdefault("p2p", "tcp:0:interface=127.0.0.1")
    prepared = prepare(NodeOptions(network=network, datadir=datadir, **options))
    storage = open_storage(reactor, prepared)
    meta = yield storage.open(prepared.genesis)
    node = build_node(reactor, prepared, storage, meta, blocks=blocks)
    node.startService()
    node.datadir = datadir

    def stop():
        if node.running:
            return node.stopService()
    testcase.addCleanup(stop)
    return node


def api_url(node):
    port = node.getServiceNamed("api").port
    return f"http://127.0.0.1:{port.getHost().port}"


def cookie(node):
    with open(os.path.join(node.datadir, ".cookie")) as f:
        return tuple(f.read().split(":", 1))


class StorageFileTestCase:
    """Mixin for tests of the real storage on a temporary file (synchronous)."""

    genesis = None  # set by the test class

    def setUp(self):
        self.path = os.path.join(make_datadir(self), "chain.sqlite3")

    def open(self):
        storage = SyncStorage(None, self.path)
        self.addCleanup(storage._close_now)
        return storage, storage.open_now(self.genesis)


def sync_node(testcase, clock, finality=None, config_changes=None):
    """A node on a Clock with synchronous storage in a temp dir (not started)."""
    datadir = make_datadir(testcase)
    prepared = prepare(NodeOptions(datadir=datadir, api="tcp:0:interface=127.0.0.1"))
    for (section, key), value in (config_changes or {}).items():
        prepared.config[section][key] = value
    storage = SyncStorage(clock, os.path.join(datadir, "chain.sqlite3"))
    meta = storage.open_now(prepared.genesis)
    node = Node(clock, prepared.network, prepared.genesis, prepared.config, storage, meta,
                prepared.identity, finality=finality)
    node.datadir = datadir
    testcase.addCleanup(storage._close_now)
    return node


@defer.inlineCallbacks
def start_devnet(testcase, reactor, count, config_text=""):
    """``count`` masternodes of one devnet, fully connected on 127.0.0.1, each
    configured as ``timecoin devnet`` configures its nodes."""
    nodes = []
    for i in range(count):
        datadir = make_datadir(testcase)
        key_file = os.path.join(datadir, "masternode.key")
        PrivateKey.devnet(i).save(key_file)
        with open(os.path.join(datadir, "timecoin.toml"), "w") as f:
            f.write(DEVNET_NODE_CONFIG.format(count=count) + config_text)
        peers = [f"127.0.0.1:{n.peer_network.listen_port()}" for n in nodes]
        node = yield start_node(testcase, reactor, datadir, masternode_key=key_file, peers=peers)
        yield node.peer_network.started
        nodes.append(node)
    yield wait_until(reactor, lambda: all(n.queries.peer_count() == count - 1 for n in nodes))
    return nodes


#: What each schema version added, undone newest first by :func:`downgrade_schema`.
_SCHEMA_UNDO = {
    7: ["ALTER TABLE masternodes DROP COLUMN missed_service"],
    6: ["DROP TABLE snapshots", "DROP TABLE snapshot_chunks",
        "DELETE FROM meta WHERE key = 'snapshot_base'"],
    5: ["DROP TABLE block_sets"],
    4: ["ALTER TABLE blocks DROP COLUMN body", "ALTER TABLE blocks DROP COLUMN certificate",
        "ALTER TABLE blocks DROP COLUMN committed_at"],
    3: ["DROP TABLE conflict_sets", "DROP TABLE conflict_set_members", "DROP TABLE pending_txs"],
    2: ["DROP TABLE masternodes", "DELETE FROM meta WHERE key = 'masternodes_need_genesis'"],
}


def downgrade_schema(path, version):
    """Turn a closed, current database into the layout of schema ``version`` (to test the
    migrations from it): every later version's additions are removed."""
    import sqlite3

    from timecoin.storage.migrations import schema_files
    newest = schema_files()[-1][0]
    assert set(_SCHEMA_UNDO) == set(range(2, newest + 1)), "a schema version has no undo"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for v in range(newest, version, -1):
            for statement in _SCHEMA_UNDO[v]:
                conn.execute(statement)
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (version,))
    finally:
        conn.close()
