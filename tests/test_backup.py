"""Backups: the online ``backup`` RPC, restoring from its copy, and the copy
taken before a schema migration."""

import io
import json
import os
import sqlite3
import stat

from twisted.internet import defer, reactor
from twisted.internet.task import Clock
from twisted.trial import unittest

from tests.support import api_url, cookie, downgrade_schema, make_datadir, start_node
from timecoin import cli
from timecoin.api.client import RpcClient, RpcError
from timecoin.ledger.genesis import make_genesis
from timecoin.ledger.networks import DEVNET
from timecoin.storage.migrations import (
    backup_before_migrating,
    backup_database,
    backup_name,
    schema_files,
)
from timecoin.testing.fakes import SyncStorage


def schema_version(path):
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
    finally:
        conn.close()


class BackupRpcTests(unittest.TestCase):
    """``backup`` while the node runs, and a node started on the copy."""

    @defer.inlineCallbacks
    def setUp(self):
        self.node = yield start_node(self, reactor)
        self.rpc = RpcClient(api_url(self.node), cookie(self.node), reactor=reactor,
                             timeout=30)
        self.addCleanup(self.rpc.close)

    @defer.inlineCallbacks
    def test_default_directory_and_restore(self):
        done = yield self.rpc.call("backup")
        path = done["path"]
        self.assertEqual(os.path.dirname(path), os.path.join(self.node.datadir, "backups"))
        self.assertEqual(os.path.getsize(path), done["bytes"])
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        self.assertEqual(schema_version(path), schema_files()[-1][0])
        self.assertEqual(os.listdir(os.path.dirname(path)), [os.path.basename(path)])
        before = yield self.rpc.call("gettxoutsetinfo")
        # Restore: the copy in place of chain.sqlite3 of a fresh data directory.
        restored_dir = make_datadir(self)
        os.replace(path, os.path.join(restored_dir, "chain.sqlite3"))
        restored = yield start_node(self, reactor, datadir=restored_dir)
        self.assertEqual(restored.queries.txoutset_info(), before)
        self.assertEqual(restored.queries.height(), self.node.queries.height())

    @defer.inlineCallbacks
    def test_given_directory_is_created(self):
        target = os.path.join(make_datadir(self), "nightly", "db")
        first = yield self.rpc.call("backup", target)
        second = yield self.rpc.call("backup", target)
        self.assertNotEqual(first["path"], second["path"])
        self.assertEqual(sorted(os.listdir(target)),
                         sorted(os.path.basename(d["path"]) for d in (first, second)))

    @defer.inlineCallbacks
    def test_cli_backup_command(self):
        target = make_datadir(self)
        out = io.StringIO()
        code = yield cli.run_command(reactor, ["--rpc", api_url(self.node), "--datadir",
                                               self.node.datadir, "--json", "backup",
                                               "--to", target], out, io.StringIO())
        self.assertEqual(code, 0)
        done = json.loads(out.getvalue())
        self.assertEqual(os.path.dirname(done["path"]), target)
        self.assertEqual(os.path.getsize(done["path"]), done["bytes"])

    @defer.inlineCallbacks
    def test_relative_or_unwritable_directory_is_an_error(self):
        with self.assertRaises(RpcError) as caught:
            yield self.rpc.call("backup", "relative/dir")
        self.assertEqual(caught.exception.code, -32602)
        blocked = os.path.join(make_datadir(self), "file")
        open(blocked, "w").close()
        with self.assertRaises(RpcError) as caught:
            yield self.rpc.call("backup", os.path.join(blocked, "under"))
        self.assertEqual(caught.exception.code, -32603)
        self.assertIn("backup failed", caught.exception.message)


class MigrationBackupTests(unittest.TestCase):
    """The database is copied before a migration; the copy is the old schema."""

    def test_backup_before_migrating_from_version_1(self):
        path = os.path.join(make_datadir(self), "chain.sqlite3")
        genesis = make_genesis(DEVNET)
        storage = SyncStorage(Clock(), path)
        storage.open_now(genesis)
        storage._close_now()
        downgrade_schema(path, 1)
        storage = SyncStorage(Clock(), path)
        storage.open_now(genesis)
        self.addCleanup(storage._close_now)
        backups = os.path.join(os.path.dirname(path), "backups")
        [name] = os.listdir(backups)
        self.assertTrue(name.startswith("chain-schema-v1-"), name)
        copy = os.path.join(backups, name)
        self.assertEqual(schema_version(copy), 1)
        self.assertEqual(schema_version(path), schema_files()[-1][0])
        self.assertIn(f"database backed up to {copy} before migrating from schema version 1",
                      storage.notes)
        storage._close_now()
        storage = SyncStorage(Clock(), path)  # an up-to-date database: no new copy
        self.addCleanup(storage._close_now)
        storage.open_now(genesis)
        self.assertEqual(os.listdir(backups), [name])

    def test_nothing_to_migrate_no_copy(self):
        path = os.path.join(make_datadir(self), "x.sqlite3")
        conn = sqlite3.connect(path)
        self.addCleanup(conn.close)
        self.assertIsNone(backup_before_migrating(conn, path, 2, 2))
        self.assertFalse(os.path.exists(os.path.join(os.path.dirname(path), "backups")))

    def test_existing_destination_is_refused_and_nothing_partial_left(self):
        directory = make_datadir(self)
        conn = sqlite3.connect(os.path.join(directory, "a.sqlite3"))
        self.addCleanup(conn.close)
        conn.execute("CREATE TABLE t (x)")
        destination = backup_name(os.path.join(directory, "a.sqlite3"), "backup", now=0)
        self.assertTrue(destination.endswith("a-backup-19700101T000000.000Z.sqlite3"))
        backup_database(conn, destination)
        self.assertRaises(FileExistsError, backup_database, conn, destination)
        self.assertEqual(os.listdir(os.path.dirname(destination)),
                         [os.path.basename(destination)])
