"""The real daemon as a child process: start-up errors, and durability across kill -9."""

import json
import os
import signal
import sqlite3

from twisted.internet import defer, reactor
from twisted.internet.protocol import Factory
from twisted.trial import unittest

from tests.support import ACCEPTED, devnet_funding, make_datadir, transfer
from timecoin.api.client import RpcClient, read_cookie
from timecoin.ledger.emission import block_reward
from timecoin.ledger.genesis import make_genesis
from timecoin.ledger.keys import PrivateKey
from timecoin.ledger.networks import COIN, DEVNET
from timecoin.ledger.tx import KIND_BLOCK_REWARD, decode_tx
from timecoin.testing.processes import is_running, run_cli, run_twistd, start_daemon, worker_pids
from timecoin.testing.waiting import poll, wait_until


class StartupErrorTests(unittest.TestCase):
    """Each broken start-up prints one line and exits 1, without a traceback."""

    timeout = 60

    def setUp(self):
        self.dir = make_datadir(self)

    @defer.inlineCallbacks
    def assertOneLineFailure(self, expected, *args, api="tcp:0:interface=127.0.0.1"):
        before = sorted(os.listdir(self.dir)) if os.path.isdir(self.dir) else None
        out, err, code = yield run_twistd(reactor, "--datadir", self.dir, "--api", api,
                                          "--p2p", "tcp:0:interface=127.0.0.1", *args)
        self.assertEqual(code, 1, (out, err))
        if before is not None and "chain.sqlite3" not in before:
            # Refused before the node was built: nothing written (no .cookie, no key).
            self.assertEqual(sorted(os.listdir(self.dir)), before)
        self.assertNotIn(b"Traceback", out + err)
        lines = err.decode().strip().splitlines()
        self.assertEqual(len(lines), 1, err)
        self.assertTrue(lines[0].startswith("timecoin: error:"), lines)
        self.assertIn(expected, lines[0])

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_broken_config(self):
        return self.assertOneLineFailure("not valid TOML", "--config",
                                         self.write("bad.toml", "[storage\nx="))

    def test_unknown_key(self):
        self.write("timecoin.toml", "[storage]\ncache_mb = 3\n")
        return self.assertOneLineFailure("unknown config key 'cache_mb'")

    def test_bad_value(self):
        self.write("timecoin.toml", "[consensus.avalanche]\nalpha = 2\n")
        return self.assertOneLineFailure("consensus.avalanche.alpha")

    def test_missing_datadir(self):
        self.dir = os.path.join(self.dir, "absent")
        return self.assertOneLineFailure("does not exist")

    def test_unknown_network(self):
        return self.assertOneLineFailure("unknown network", "--network", "moonnet")

    def test_damaged_database(self):
        self.write("chain.sqlite3", "garbage " * 1000)
        return self.assertOneLineFailure("damaged")

    def test_bad_endpoint_strings(self):
        return defer.gatherResults([
            self.assertOneLineFailure("API endpoint 'tcp:notaport' is not valid",
                                      api="tcp:notaport"),
            self.assertOneLineFailure("Unknown endpoint type: 'bogus'", api="bogus:1"),
        ])

    def test_bad_peer_addresses(self):
        return defer.gatherResults([
            self.assertOneLineFailure("peer 'nohost' is not HOST:PORT", "--peer", "nohost"),
            self.assertOneLineFailure("from 1 to 65535", "--peer", "127.0.0.1:99999"),
        ])

    def test_config_values_that_are_not_finite_or_not_utf8(self):
        self.write("bad1.toml", "[state]\nlock_timeout_s = inf\n")
        self.write("bad2.toml", "[network]\nrate_limit_tx = 1e17\n")
        with open(os.path.join(self.dir, "bad3.toml"), "wb") as f:
            f.write(b"[storage]\n# \xff\n")
        return defer.gatherResults([
            self.assertOneLineFailure("state.lock_timeout_s", "--config",
                                      os.path.join(self.dir, "bad1.toml")),
            self.assertOneLineFailure("network.rate_limit_tx", "--config",
                                      os.path.join(self.dir, "bad2.toml")),
            self.assertOneLineFailure("not UTF-8", "--config", os.path.join(self.dir, "bad3.toml")),
        ])

    @defer.inlineCallbacks
    def test_zero_length_database_is_untouched_until_options_pass(self):
        path = self.write("chain.sqlite3", "")
        yield self.assertOneLineFailure("peer 'nohost'", "--peer", "nohost")
        self.assertEqual(os.path.getsize(path), 0)
        self.assertEqual(sorted(os.listdir(self.dir)), ["chain.sqlite3"])
        out, err, code = yield run_twistd(reactor, "--datadir", self.dir, "--check-db")
        self.assertEqual(code, 1, (out, err))
        daemon = start_daemon(reactor, self.dir)
        self.addCleanup(daemon.kill)
        yield daemon.api_url  # a new database, created at this start
        self.assertIn(b"database created with schema version", daemon.output)
        self.assertNotIn(b"[debug]", daemon.output.lower())
        yield daemon.kill(signal.SIGTERM)

    @defer.inlineCallbacks
    def test_damage_quick_check_misses_stops_start_and_check_db_reports_it(self):
        daemon = start_daemon(reactor, self.dir)
        self.addCleanup(daemon.kill)
        yield daemon.api_url
        yield daemon.kill(signal.SIGTERM)
        out, err, code = yield run_twistd(reactor, "--datadir", self.dir, "--check-db")
        self.assertEqual(code, 0, (out, err))
        self.assertIn(b"no damage found", out)
        conn = sqlite3.connect(os.path.join(self.dir, "chain.sqlite3"))
        conn.execute("UPDATE utxos SET amount = amount + 1 WHERE vout = 7")
        conn.commit()
        # The dev keys' funds and a collateral, and the rewards of any block
        # committed before the stop.
        rewards = conn.execute("SELECT COUNT(*) FROM blocks WHERE height > 0").fetchone()[0]
        conn.close()
        supply = make_genesis(DEVNET).total_supply + rewards * block_reward(DEVNET, 1)
        yield self.assertOneLineFailure(f"the utxos table holds {supply + 1} units")
        out, err, code = yield run_twistd(reactor, "--datadir", self.dir, "--check-db")
        self.assertEqual(code, 1, (out, err))
        self.assertNotIn(b"Traceback", out + err)
        self.assertIn(b"FAIL  utxos rows vs the stored set hash", out)
        self.assertIn(b": damaged", out)

    def test_unreadable_key_file(self):
        return self.assertOneLineFailure("cannot read key file", "--masternode-key",
                                         os.path.join(self.dir, "missing.key"))

    @defer.inlineCallbacks
    def test_port_in_use(self):
        busy = reactor.listenTCP(0, Factory(), interface="127.0.0.1")
        self.addCleanup(busy.stopListening)
        port = busy.getHost().port
        out, err, code = yield run_twistd(reactor, "--datadir", self.dir, "--api",
                                          f"tcp:{port}:interface=127.0.0.1", "--p2p",
                                          "tcp:0:interface=127.0.0.1")
        self.assertEqual(code, 1, (out, err))
        self.assertNotIn(b"Traceback", out + err)
        self.assertEqual(len(err.decode().strip().splitlines()), 1, err)
        self.assertIn("cannot listen", err.decode())
        self.assertNotIn(".cookie", os.listdir(self.dir))  # no stale credentials left


class DurabilityTests(unittest.TestCase):
    """Send with the CLI, kill -9, restart: every finalized transaction is there."""

    timeout = 120

    @defer.inlineCallbacks
    def test_kill_and_restart_keeps_every_finalized_transaction(self):
        datadir = make_datadir(self)
        # Never flush the UTXO tables while running: everything must come back
        # from the finality journal.
        with open(os.path.join(datadir, "timecoin.toml"), "w") as f:
            f.write("[storage]\nflush_interval_ms = 600000\n")
        daemon = start_daemon(reactor, datadir)
        self.addCleanup(daemon.kill)
        url = yield daemon.api_url
        # Signatures are verified by two worker processes (the preset).
        yield wait_until(reactor, lambda: len(worker_pids(daemon.transport.pid)) == 2)
        workers = worker_pids(daemon.transport.pid)
        key_file = os.path.join(datadir, "dev0.key")
        out, err, code = yield run_cli(reactor, "devnet-key", "0", "--out", key_file)
        self.assertEqual(code, 0, err)
        dest = PrivateKey.devnet(9).address()
        finalized = []
        for _ in range(3):
            out, err, code = yield run_cli(reactor, "send", "--key", key_file, "--to", dest,
                                           "--amount", "1.5", "--wait", "--json",
                                           "--rpc", url, "--datadir", datadir)
            self.assertEqual(code, 0, err)
            result = json.loads(out)
            self.assertIn(result["status"], ACCEPTED)
            finalized.append(result["txid"])
        rpc = RpcClient(url, read_cookie(datadir), reactor=reactor)
        key, op, amount = devnet_funding(4)
        chain_op, chain_amount = op, amount
        for _ in range(20):
            tx = transfer(key, [chain_op], [(COIN, key.key_hash)], total=chain_amount)
            txid = yield rpc.call("sendrawtransaction", tx.hex())
            status = yield rpc.call("waitfortransaction", txid, 10)
            self.assertIn(status["status"], ACCEPTED)
            finalized.append(txid)
            chain_op, chain_amount = tx.outpoints()[1], tx.outputs[1].amount
        height, before = yield _set_at_one_height(rpc)
        yield rpc.close()
        code = yield daemon.kill()
        self.assertNotEqual(code, 0)
        # Its workers see their input close and end too.
        yield wait_until(reactor, lambda: not any(map(is_running, workers)))
        conn = sqlite3.connect(os.path.join(datadir, "chain.sqlite3"))
        unapplied = conn.execute(
            "SELECT txid, raw, block_height FROM transactions WHERE seq > "
            "(SELECT value FROM meta WHERE key = 'applied_seq')").fetchall()
        conn.close()
        # Every finalized transaction is in the journal, unapplied; the other
        # entries are the reward transactions of the blocks committed meanwhile.
        self.assertEqual({t.hex() for t, _, _ in unapplied} & set(finalized), set(finalized))
        others = [(decode_tx(raw), h) for t, raw, h in unapplied if t.hex() not in finalized]
        self.assertTrue(all(tx.kind == KIND_BLOCK_REWARD and h is not None for tx, h in others))
        self.assertEqual(len(unapplied), len(finalized) + len(others))

        again = start_daemon(reactor, datadir)
        self.addCleanup(again.kill)
        url = yield again.api_url
        yield wait_until(reactor, lambda: len(worker_pids(again.transport.pid)) == 2)
        workers = worker_pids(again.transport.pid)
        rpc = RpcClient(url, read_cookie(datadir), reactor=reactor)
        height_after, after = yield _set_at_one_height(rpc)
        for txid in finalized:
            status = yield rpc.call("gettransaction", txid)
            self.assertIn(status["status"], ACCEPTED, txid)
        if height_after == height:
            self.assertEqual(after, before)
        else:
            # Blocks committed since the restart: the set is the one before plus
            # their rewards, and it is exactly the set the last block names
            # (every transaction finalized before the kill is in a block by now).
            headers = yield defer.gatherResults([rpc.call("getblockheader", h) for h in
                                                 range(height + 1, height_after + 1)])
            self.assertEqual(after["total_amount"],
                             before["total_amount"] + sum(h["reward"] for h in headers))
            self.assertEqual(after["hash"], headers[-1]["utxo_set_hash"])
        out, err, code = yield run_cli(reactor, "balance", dest, "--rpc", url,
                                       "--datadir", datadir, "--json")
        self.assertEqual(code, 0, err)
        self.assertEqual(json.loads(out)["finalized"], 100_000 * COIN + 3 * 150_000_000)
        yield rpc.call("stop")
        yield rpc.close()
        code = yield again.ended
        self.assertEqual(code, 0, again.output.decode())
        self.assertIn(b"node stopped", again.output)
        # A graceful stop has already ended (and reaped) the workers.
        self.assertFalse(any(map(is_running, workers)))


@defer.inlineCallbacks
def _set_at_one_height(rpc):
    """``(height, gettxoutsetinfo)`` read with no block committed in between."""
    while True:
        height = yield rpc.call("getblockcount")
        info = yield rpc.call("gettxoutsetinfo")
        if (yield rpc.call("getblockcount")) == height:
            return height, info


class PeeringTests(unittest.TestCase):
    """Two daemons started with --peer find each other and relay transactions."""

    timeout = 120

    @defer.inlineCallbacks
    def test_two_daemons_peer_and_relay(self):
        masternode_dir, joiner_dir = make_datadir(self), make_datadir(self)
        masternode = start_daemon(reactor, masternode_dir)
        self.addCleanup(masternode.kill)
        url_a = yield masternode.api_url
        rpc_a = RpcClient(url_a, read_cookie(masternode_dir), reactor=reactor)
        self.addCleanup(rpc_a.close)
        info = yield rpc_a.call("getinfo")
        match = yield masternode.expect(rb"peer network listening on .*?port=(\d+)")
        p2p_port = int(match.group(1))
        joiner = start_daemon(reactor, joiner_dir, "--peer", f"127.0.0.1:{p2p_port}")
        self.addCleanup(joiner.kill)
        url_b = yield joiner.api_url
        rpc_b = RpcClient(url_b, read_cookie(joiner_dir), reactor=reactor)
        self.addCleanup(rpc_b.close)
        peers_b = yield _wait_for_peers(rpc_b)
        peers_a = yield _wait_for_peers(rpc_a)
        self.assertEqual(peers_b[0]["direction"], "outbound")
        self.assertEqual(peers_a[0]["direction"], "inbound")
        self.assertLessEqual({"id", "address", "direction", "version", "ping_ms", "banscore"},
                             set(peers_b[0]))
        info_b = yield rpc_b.call("getinfo")
        self.assertEqual(info_b["best_block_hash"], info["best_block_hash"])
        self.assertEqual(info_b["masternodes_active"], 1)
        # sent to the plain node: relayed to the masternode, finalized on both
        key, op, amount = devnet_funding(3)
        tx = transfer(key, [op], [(COIN, key.key_hash)], total=amount)
        txid = yield rpc_b.call("sendrawtransaction", tx.hex())
        for rpc in (rpc_b, rpc_a):
            status = yield rpc.call("waitfortransaction", txid, 20)
            self.assertIn(status["status"], ACCEPTED)
        # The plain node follows the masternode's blocks (certified), so the
        # sets agree at equal heights.
        hashes = yield poll(reactor, lambda: defer.gatherResults(
            [_set_at_one_height(r) for r in (rpc_a, rpc_b)]),
            lambda both: both[0] == both[1], timeout=20, interval=0.2)
        self.assertEqual(hashes[0], hashes[1])


def _wait_for_peers(rpc, timeout=30):
    """getpeerinfo once it lists a peer (asked every 50 ms on reactor timers)."""
    return poll(reactor, lambda: rpc.call("getpeerinfo"), timeout=timeout, interval=0.05)


class TwistTests(unittest.TestCase):
    """``twist timecoin`` runs the same service as ``twistd -n timecoin``."""

    timeout = 60

    @defer.inlineCallbacks
    def test_twist_serves_and_stops_on_sigterm(self):
        datadir = make_datadir(self)
        daemon = start_daemon(reactor, datadir, runner="twist")
        self.addCleanup(daemon.kill)
        url = yield daemon.api_url
        rpc = RpcClient(url, read_cookie(datadir), reactor=reactor)
        info = yield rpc.call("getinfo")
        self.assertEqual(info["network"], "devnet")
        yield rpc.close()
        code = yield daemon.kill(signal.SIGTERM)
        self.assertIn(code, (0, -signal.SIGTERM))
        self.assertNotIn(b"Traceback", daemon.output)
        self.assertIn(b"node stopped", daemon.output)
