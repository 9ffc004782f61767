"""The ``timecoin`` command line and the RPC client, against a fake node (no sockets)."""

import io
import json
import os
import stat
import sys

from treq.client import HTTPClient
from treq.testing import StubTreq
from twisted.internet import defer
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.testing import MemoryReactorClock
from twisted.trial import unittest
from twisted.web.resource import Resource

from timecoin import cli
from timecoin.api import client as rpcclient
from timecoin.api.client import RpcClient, RpcError
from timecoin.cli.registry import COMMANDS, Command
from timecoin.cli.wallet import default_fee, estimate_size, parse_amount, select_coins
from timecoin.ledger.keys import PrivateKey
from timecoin.ledger.networks import COIN, DEVNET, MAX_SUPPLY, TESTNET
from timecoin.ledger.tx import MAX_INPUTS, OutPoint, check_stateless, decode_hex

COOKIE = ("__cookie__", "5e" * 16)
DEVNET0 = "TIME2MbfxKUwFvgfRWMmNDUJjErtAe3ETEV49Q"


class FakeNode(Resource):
    """A JSON-RPC endpoint: ``handlers[method](*params)`` → result, or raises RpcError."""

    isLeaf = True

    def __init__(self, credentials=COOKIE):
        super().__init__()
        self.credentials = credentials
        self.handlers = {}
        self.calls = []

    def _one(self, req):
        self.calls.append((req["method"], req["params"]))
        try:
            if req["method"] not in self.handlers:
                raise RpcError(-32601, f"method not found: {req['method']}")
            result = self.handlers[req["method"]](*req["params"])
        except RpcError as e:
            return {"jsonrpc": "2.0", "id": req["id"], "error": {"code": e.code,
                                                                  "message": e.message}}
        return {"jsonrpc": "2.0", "id": req["id"], "result": result}

    def render_POST(self, request):
        user, password = request.getUser().decode(), request.getPassword().decode()
        if (user, password) != self.credentials:
            request.setResponseCode(401)
            return b"unauthorized"
        body = json.loads(request.content.read())
        request.setHeader(b"content-type", b"application/json")
        if isinstance(body, list):
            return json.dumps([self._one(r) for r in body]).encode()
        response = self._one(body)
        if "error" in response:
            request.setResponseCode(500)
        return json.dumps(response).encode()


def stub_for(node):
    root = Resource()
    root.putChild(b"rpc", node)
    return StubTreq(root)


class RefusingAgent:
    def request(self, *args, **kwargs):
        return defer.fail(ConnectionRefusedError("Connection refused"))


def utxo(tag, vout, amount, status="unspent"):
    return {"txid": tag * 32, "vout": vout, "amount": amount, "status": status}


UTXOS = [utxo("aa", 0, 5 * COIN), utxo("bb", 1, 3 * COIN), utxo("cc", 0, 100 * COIN, "pending"),
         utxo("dd", 2, 50 * COIN, "locked"), utxo("ee", 0, 1 * COIN)]


class CliTestCase(unittest.TestCase):
    def setUp(self):
        self.datadir = self.mktemp()
        os.makedirs(self.datadir)
        with open(os.path.join(self.datadir, ".cookie"), "w") as f:
            f.write(":".join(COOKIE) + "\n")
        self.node = FakeNode()
        self.treq = stub_for(self.node)
        self.key_file = os.path.join(self.datadir, "k0.json")
        PrivateKey.devnet(0).save(self.key_file)

    def run_cli(self, *argv, treq=None):
        """Run ``timecoin argv``: ``(status, stdout, stderr)``."""
        out, err = io.StringIO(), io.StringIO()
        argv = [*argv, "--datadir", self.datadir] if argv and argv[0] in COMMANDS else argv
        d = cli.run_command(MemoryReactorClock(), list(argv), out, err,
                            treq_client=treq or self.treq)
        status = self.successResultOf(d)
        self.assertNotIn("Traceback", err.getvalue())
        return status, out.getvalue(), err.getvalue()

    def send(self, *extra, utxos=UTXOS):
        self.node.handlers["listunspent"] = lambda address: utxos
        self.node.handlers.setdefault("sendrawtransaction", lambda h: decode_hex(h).txid.hex())
        return self.run_cli("send", "--key", self.key_file, "--to",
                            PrivateKey.devnet(1).address(), *extra)

    def sent_tx(self):
        hexes = [p[0] for m, p in self.node.calls if m == "sendrawtransaction"]
        self.assertEqual(len(hexes), 1)
        return decode_hex(hexes[0])


class UsageTests(CliTestCase):
    def test_argument_errors(self):
        for argv in ([], ["nope"], ["info", "--bogus"], ["info", "--network", "moon"],
                     ["send", "--key", "k"], ["devnet-key", "x", "--out", "f"],
                     ["balance"]):
            status, _, err = self.run_cli(*argv)
            self.assertEqual(status, 2, argv)
            self.assertIn("error", err)
        self.assertEqual(self.node.calls, [])

    def test_main_bad_usage_exits_2_without_reactor(self):
        err = io.StringIO()
        self.patch(sys, "stderr", err)
        with self.assertRaises(SystemExit) as cm:
            cli.main(["balance", "--bogus"])
        self.assertEqual(cm.exception.code, 2)
        self.assertIn("ADDRESS", err.getvalue())

    def test_common_options_before_or_after_command(self):
        self.node.handlers["getinfo"] = lambda: {"height": 3}
        for argv in (["--json", "info", "--datadir", self.datadir],
                     ["info", "--json", "--datadir", self.datadir]):
            status, out, _ = self.run_cli(*argv)
            self.assertEqual((status, json.loads(out)), (0, {"height": 3}))

    def test_extra_command_registry(self):
        def run(ctx):
            ctx.print(f"hello {ctx.args.who} on {ctx.network.name}")
            return 0
        cli.register(Command("hello", "say hello", lambda p: p.add_argument("who"), run))
        self.addCleanup(COMMANDS.pop, "hello")
        self.assertEqual(self.run_cli("hello", "you", "--network", "testnet"),
                         (0, "hello you on testnet\n", ""))


class KeyTests(CliTestCase):
    def test_keygen(self):
        path = os.path.join(self.datadir, "new.json")
        status, out, _ = self.run_cli("keygen", "--out", path)
        self.assertEqual((status, out.strip()), (0, PrivateKey.load(path).address()))
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        self.assertEqual(self.run_cli("address", "--key", path)[1], out)
        status, _, err = self.run_cli("keygen", "--out", path)
        self.assertEqual((status, PrivateKey.load(path).address()), (2, out.strip()))
        self.assertIn("refusing to overwrite", err)
        path = os.path.join(self.datadir, "new2.json")
        status, out, _ = self.run_cli("keygen", "--out", path, "--json", "--network", "testnet")
        self.assertEqual(json.loads(out), {"key_file": os.path.abspath(path),
                                           "address": PrivateKey.load(path).address(0)})
        self.assertTrue(json.loads(out)["address"].startswith("TIME0"))

    def test_devnet_key_and_address(self):
        path = os.path.join(self.datadir, "d0.json")
        self.assertEqual(self.run_cli("devnet-key", "0", "--out", path), (0, DEVNET0 + "\n", ""))
        self.assertEqual(PrivateKey.load(path).seed, PrivateKey.devnet(0).seed)
        self.assertEqual(self.run_cli("devnet-key", "-1", "--out", path + "x")[0], 2)
        self.assertEqual(self.run_cli("address", "--key", path), (0, DEVNET0 + "\n", ""))
        status, out, _ = self.run_cli("address", "--key", path, "--network", "testnet")
        self.assertEqual(out.strip(), PrivateKey.devnet(0).address(TESTNET.network_id))

    def test_bad_key_files(self):
        bad = os.path.join(self.datadir, "bad.json")
        with open(bad, "w") as f:
            f.write("not json")
        for path in (bad, os.path.join(self.datadir, "missing.json")):
            status, _, err = self.run_cli("address", "--key", path)
            self.assertEqual(status, 2)
            self.assertIn(path, err)


class AmountTests(CliTestCase):
    def test_parse_amount(self):
        self.assertEqual([parse_amount(t) for t in ("1", "0.00000001", "1.50000000", ".5",
                                                    "21000000")],
                         [COIN, 1, 150_000_000, COIN // 2, MAX_SUPPLY])
        for bad in ("0", "0.0", "-1", "0.000000001", "1.123456789", "21000000.00000001",
                    "1e3", "abc", "", "NaN", "Infinity", "1,5", "1_000"):
            self.assertRaises(cli.UsageError, parse_amount, bad)

    def test_bad_amounts_exit_2_before_any_call(self):
        for amount in ("0", "-1", "0.000000001", "99999999", "ten"):
            status, _, err = self.send("--amount", amount)
            self.assertEqual(status, 2, amount)
            self.assertIn("--amount", err)
        self.assertEqual(self.send("--amount", "1", "--fee", "0")[0], 2)
        self.assertEqual(self.node.calls, [])


class SendTests(CliTestCase):
    def test_send_spends_unspent_largest_first_with_change(self):
        status, out, err = self.send("--amount", "7")
        self.assertEqual((status, err), (0, ""))
        tx = self.sent_tx()
        self.assertEqual(out, tx.txid.hex() + "\n")
        check_stateless(tx, DEVNET.network_id)
        self.assertEqual([i.prevout for i in tx.inputs],
                         [OutPoint(b"\xaa" * 32, 0), OutPoint(b"\xbb" * 32, 1)])
        self.assertEqual(default_fee(2), 10_000)
        self.assertEqual([(o.amount, o.key_hash) for o in tx.outputs],
                         [(7 * COIN, PrivateKey.devnet(1).key_hash),
                          (COIN - 10_000, PrivateKey.devnet(0).key_hash)])
        self.assertEqual(tx.size, estimate_size(2, 2))
        self.assertEqual(self.node.calls[0], ("listunspent", [DEVNET0]))

    def test_explicit_fee_and_no_change(self):
        self.assertEqual(self.send("--amount", "1", "--fee", "0.5")[0], 0)
        self.assertEqual([o.amount for o in self.sent_tx().outputs], [COIN, 35 * COIN // 10])
        self.node.calls.clear()
        self.assertEqual(self.send("--amount", "4.9999", "--fee", "0.00010000")[0], 0)
        tx = self.sent_tx()
        self.assertEqual(([o.amount for o in tx.outputs], len(tx.inputs)), ([499_990_000], 1))

    def test_insufficient_funds(self):
        status, out, err = self.send("--amount", "9")
        self.assertEqual((status, out), (1, ""))
        self.assertIn("insufficient funds", err)
        self.assertIn("150.00000000 TIME more not final yet", err)
        self.assertNotIn("sendrawtransaction", [m for m, _ in self.node.calls])

    def test_hex_only_submits_nothing(self):
        status, out, _ = self.send("--amount", "2", "--hex-only")
        check_stateless(decode_hex(out.strip()), DEVNET.network_id)
        self.assertEqual((status, [m for m, _ in self.node.calls]), (0, ["listunspent"]))
        out = self.send("--amount", "2", "--hex-only", "--json")[1]
        self.assertEqual(set(json.loads(out)), {"txid", "hex", "fee"})
        self.assertEqual(self.send("--amount", "2", "--hex-only", "--wait")[0], 2)

    def wait_result(self, status, ms):
        def wait(txid, timeout):
            self.waited = (txid, timeout)
            return {"txid": txid, "status": status, "block_height": None,
                    "finality_ms": ms, "hex": "00"}
        self.node.handlers["waitfortransaction"] = wait

    def test_wait(self):
        self.wait_result("finalized", 42)
        status, out, _ = self.send("--amount", "1", "--wait", "--timeout", "5")
        txid = self.sent_tx().txid.hex()
        self.assertEqual(status, 0)
        self.assertEqual(out, f"{txid}\nstatus: finalized\nfinality_ms: 42\n")
        self.assertEqual(self.waited, (txid, 5))

    def test_json(self):
        self.wait_result("finalized", 7)
        status, out, _ = self.send("--amount", "1", "--wait", "--json")
        txid = self.sent_tx().txid.hex()
        self.assertEqual(json.loads(out), {"txid": txid, "status": "finalized", "finality_ms": 7})
        self.assertEqual(self.waited, (txid, 60))
        self.node.calls.clear()
        status, out, _ = self.send("--amount", "1", "--json")
        self.assertEqual(json.loads(out), {"txid": txid, "status": "pending",
                                           "finality_ms": None})

    def test_wait_rejected_exits_1(self):
        self.wait_result("rejected", None)
        status, out, err = self.send("--amount", "1", "--wait")
        self.assertEqual((status, out.splitlines()[1:], err.split()[-2:]),
                         (1, ["status: rejected", "finality_ms: -"], ["is", "rejected"]))

    def test_node_rejects(self):
        def reject(hex_):
            raise RpcError(-26, "insufficient-fee: 10 units below the minimum")
        self.node.handlers["sendrawtransaction"] = reject
        self.assertEqual(self.send("--amount", "1"),
                         (1, "", "error: insufficient-fee: 10 units below the minimum\n"))

    def test_bad_destination(self):
        for to in ("TIME2nope", PrivateKey.devnet(1).address(TESTNET.network_id)):
            status, _, err = self.run_cli("send", "--key", self.key_file, "--to", to,
                                          "--amount", "1")
            self.assertEqual(status, 2)
        self.assertIn("testnet", err)

    def test_select_coins(self):
        chosen, fee, change = select_coins(UTXOS, COIN)
        self.assertEqual([a for _, a in chosen], [5 * COIN])
        self.assertEqual((fee, change), (10_000, 4 * COIN - 10_000))
        many = [utxo(f"{i:02x}", 0, COIN) for i in range(200)]
        chosen, fee, change = select_coins(many, 150 * COIN)
        self.assertEqual(len(chosen), 151)
        self.assertEqual(fee, estimate_size(151, 2))
        many = [utxo(f"{i:03x}"[:2] + f"{i:03x}", 0, 1000) for i in range(MAX_INPUTS + 10)]
        self.assertRaisesRegex(cli.CommandError, "consolidate", select_coins, many,
                               (MAX_INPUTS + 5) * 1000, 1)


class QueryTests(CliTestCase):
    def test_balance(self):
        self.node.handlers["getbalance"] = lambda a: {"finalized": 150_000_000, "pending": 1}
        status, out, _ = self.run_cli("balance", DEVNET0)
        self.assertEqual(out, "finalized: 1.50000000 TIME\npending:   0.00000001 TIME\n")
        status, out, _ = self.run_cli("balance", DEVNET0, "--json")
        self.assertEqual(json.loads(out), {"address": DEVNET0, "finalized": 150_000_000,
                                           "pending": 1})
        self.assertEqual(self.node.calls[0], ("getbalance", [DEVNET0]))
        self.assertEqual(self.run_cli("balance", DEVNET0[:-1] + "x")[0], 2)

    def test_tx(self):
        txid = "ab" * 32
        result = {"txid": txid, "status": "finalized", "block_height": None,
                  "finality_ms": 12, "hex": "00"}
        self.node.handlers["gettransaction"] = lambda t: result
        status, out, _ = self.run_cli("tx", txid.upper())
        self.assertIn("status:       finalized", out)
        self.assertIn("block_height: -", out)
        self.assertEqual(json.loads(self.run_cli("tx", txid, "--json")[1]), result)
        self.assertEqual(self.run_cli("tx", "xyz")[0], 2)

        def missing(t):
            raise RpcError(-5, "transaction not found")
        self.node.handlers["gettransaction"] = missing
        self.assertEqual(self.run_cli("tx", "00" * 32),
                         (1, "", "error: transaction not found\n"))

    def test_block(self):
        header = {"height": 3, "hash": "cd" * 32, "prev_hash": "ab" * 32, "time": 1,
                  "round": 0, "proposer": "01" * 32, "tx_root": "02" * 32,
                  "utxo_set_hash": "03" * 32, "masternode_set_hash": "04" * 32,
                  "reward": 6337617, "deactivated": [],
                  "commit": [{"pubkey": "05" * 32, "signature": "06" * 64}]}
        block = {k: v for k, v in header.items() if k != "commit"}
        block.update(txids=["ee" * 32], reward_txid="ee" * 32)
        self.node.handlers["getblockheader"] = lambda key: header
        self.node.handlers["getblock"] = lambda key: block
        status, out, _ = self.run_cli("block", "3")
        self.assertEqual(status, 0)
        self.assertIn("hash:                " + "cd" * 32, out)
        self.assertIn("commit:              1 signatures", out)
        self.assertNotIn("deactivated", out)
        self.assertEqual(self.node.calls[-2:], [("getblockheader", [3]), ("getblock", [3])])
        result = json.loads(self.run_cli("block", "CD" * 32, "--json")[1])
        self.assertEqual(result, {**block, **header})
        self.assertEqual(self.node.calls[-1], ("getblock", ["cd" * 32]))
        self.assertEqual(self.run_cli("block", "xyz")[0], 2)

        def missing(key):
            raise RpcError(-5, "block not found: 9")
        self.node.handlers["getblockheader"] = missing
        self.assertEqual(self.run_cli("block", "9"), (1, "", "error: block not found: 9\n"))

    def test_info_peers_masternodes(self):
        self.node.handlers["getinfo"] = lambda: {"network": "devnet", "height": 7}
        self.node.handlers["getpeerinfo"] = lambda: [
            {"id": 1, "address": "127.0.0.1:24202", "direction": "outbound",
             "version": 1, "ping_ms": 0.5, "banscore": 0}]
        self.node.handlers["getmasternodes"] = lambda: []
        self.assertEqual(self.run_cli("info")[1], "network: devnet\nheight:  7\n")
        self.assertEqual([line.split() for line in self.run_cli("peers")[1].splitlines()],
                         [["id", "address", "direction", "version", "ping_ms", "banscore"],
                          ["1", "127.0.0.1:24202", "outbound", "1", "0.5", "0"]])
        self.assertEqual(self.run_cli("masternodes")[1], "no masternodes\n")
        self.assertEqual(json.loads(self.run_cli("masternodes", "--json")[1]), [])


class ConnectionTests(CliTestCase):
    def test_unreachable_node(self):
        self.assertEqual(self.run_cli("info", treq=HTTPClient(RefusingAgent())), (1, "", (
            "error: cannot reach the node at http://127.0.0.1:24201/rpc: "
            "connection refused (is the node running?)\n")))
        self.assertEqual(RpcClient("http://h:1/rpc/", None, self.treq).url, "http://h:1/rpc")
        status, _, err = self.run_cli("info", "--rpc", "http://127.0.0.2:9",
                                      treq=HTTPClient(RefusingAgent()))
        self.assertIn("http://127.0.0.2:9/rpc", err)

    def test_auth_failure(self):
        self.node.credentials = ("__cookie__", "other")
        status, _, err = self.run_cli("info")
        self.assertEqual(status, 1)
        self.assertIn("authentication failed (cookie?)", err)
        os.remove(os.path.join(self.datadir, ".cookie"))
        status, _, err = self.run_cli("info")
        self.assertIn(os.path.join(self.datadir, ".cookie"), err)

    def test_credentials(self):
        self.assertEqual(rpcclient.read_cookie(self.datadir), COOKIE)
        self.assertRaises(rpcclient.CookieError, rpcclient.read_cookie, self.mktemp())
        with open(os.path.join(self.datadir, ".cookie"), "w") as f:
            f.write("nocolon")
        self.assertRaises(rpcclient.CookieError, rpcclient.read_cookie, self.datadir)
        os.remove(os.path.join(self.datadir, ".cookie"))
        self.assertIsNone(rpcclient.read_credentials(self.datadir))
        with open(os.path.join(self.datadir, "timecoin.toml"), "w") as f:
            f.write('[api]\nrpcuser = "alice"\nrpcpassword = "pw"\n')
        self.assertEqual(rpcclient.read_credentials(self.datadir), ("alice", "pw"))
        self.node.credentials = ("alice", "pw")
        self.node.handlers["getblockcount"] = lambda: 5
        self.assertEqual(self.run_cli("masternodes")[0], 1)  # method not found
        client = RpcClient("http://n:1", rpcclient.read_credentials(self.datadir), self.treq)
        self.assertEqual(self.successResultOf(client.call("getblockcount")), 5)

    def test_client_errors(self):
        client = RpcClient("http://n:1", COOKIE, self.treq)
        failure = self.failureResultOf(client.call("nosuch"), RpcError)
        self.assertEqual(failure.value.code, -32601)
        bad = RpcClient("http://n:1", ("u", "p"), self.treq)
        self.failureResultOf(bad.call("getinfo"), rpcclient.RpcAuthError)
        down = RpcClient("http://n:1", COOKIE, HTTPClient(RefusingAgent()))
        self.failureResultOf(down.call("getinfo"), rpcclient.RpcConnectionError)

    def test_batch(self):
        self.node.handlers["getblockcount"] = lambda: 9
        self.node.handlers["echo"] = lambda *a: list(a)
        client = RpcClient("http://n:1/", COOKIE, self.treq)
        results = self.successResultOf(client.batch([
            ("getblockcount", []), ("echo", ["x", 1]), ("nosuch", [1])]))
        self.assertEqual(results[:2], [9, ["x", 1]])
        self.assertIsInstance(results[2], RpcError)
        self.assertEqual(self.successResultOf(client.batch([])), [])


class MasternodeCommandTests(CliTestCase):
    def setUp(self):
        super().setUp()
        self.mn_file = os.path.join(self.datadir, "mn.json")
        PrivateKey.devnet(8).save(self.mn_file)
        self.node.handlers["getmasternodes"] = lambda: []
        self.node.handlers["sendrawtransaction"] = lambda h: decode_hex(h).txid.hex()

    def test_register_reuses_an_output_of_the_tier_amount(self):
        from timecoin.ledger.registration import BRONZE
        from timecoin.ledger.tx import registration_of
        utxos = [utxo("aa", 0, BRONZE.collateral), utxo("bb", 1, 3 * COIN)]
        self.node.handlers["listunspent"] = lambda address: utxos
        status, out, err = self.run_cli("masternode", "register", "--key", self.key_file,
                                        "--masternode-key", self.mn_file, "--tier", "bronze",
                                        "--collateral", "aa" * 32 + ":0", "--json")
        self.assertEqual(status, 0, err)
        tx = self.sent_tx()
        check_stateless(tx, DEVNET.network_id)
        self.assertEqual(tx.inputs[0].prevout, OutPoint(b"\xaa" * 32, 0))
        self.assertEqual(tx.outputs[0].amount, BRONZE.collateral)
        reg = registration_of(tx)
        self.assertEqual(reg.masternode_pubkey, PrivateKey.devnet(8).pubkey)
        self.assertEqual(json.loads(out)["collateral"], f"{tx.txid.hex()}:0")

    def test_register_announces_a_masternode_deactivated_for_missed_service(self):
        from timecoin.ledger.registration import BRONZE
        from timecoin.ledger.tx import registration_of
        mn = PrivateKey.devnet(8).pubkey.hex()
        collateral = "aa" * 32 + ":0"
        known = {"pubkey": mn, "collateral": collateral, "missed_service": False}
        self.node.handlers["getmasternodes"] = lambda: [known]
        self.node.handlers["listunspent"] = lambda address: [
            {**utxo("aa", 0, BRONZE.collateral), "collateral": True}, utxo("bb", 1, 3 * COIN)]
        args = ["masternode", "register", "--key", self.key_file, "--masternode-key",
                self.mn_file, "--tier", "bronze"]
        status, _, err = self.run_cli(*args)
        self.assertEqual(status, 1)
        self.assertIn("registered already", err)
        known["missed_service"] = True
        status, _, err = self.run_cli(*args)
        self.assertEqual(status, 0, err)
        tx = self.sent_tx()
        check_stateless(tx, DEVNET.network_id)
        self.assertEqual(tx.inputs[0].prevout, OutPoint(b"\xaa" * 32, 0))
        self.assertEqual(tx.outputs[0].amount, BRONZE.collateral)
        self.assertEqual(registration_of(tx).masternode_pubkey.hex(), mn)

    def test_register_refusals(self):
        self.node.handlers["listunspent"] = lambda address: [utxo("aa", 0, 5 * COIN)]
        base = ["masternode", "register", "--key", self.key_file, "--masternode-key",
                self.mn_file]
        self.assertEqual(self.run_cli(*base, "--tier", "platinum")[0], 2)
        self.assertEqual(self.run_cli(*base, "--tier", "gold", "--collateral", "xyz")[0], 2)
        status, _, err = self.run_cli(*base, "--tier", "bronze", "--collateral", "aa" * 32 + ":0")
        self.assertEqual(status, 1)
        self.assertIn("needs exactly 1000.00000000 TIME", err)
        status, _, err = self.run_cli(*base, "--tier", "gold")
        self.assertEqual(status, 1)
        self.assertIn("insufficient funds", err)

    def test_send_never_spends_a_collateral(self):
        status, _, err = self.send("--amount", "1", utxos=[
            {**utxo("aa", 0, 1000 * COIN), "collateral": True}, utxo("bb", 1, 3 * COIN)])
        self.assertEqual(status, 0, err)
        self.assertEqual([i.prevout for i in self.sent_tx().inputs], [OutPoint(b"\xbb" * 32, 1)])

    def test_deregister_spends_the_collateral_back(self):
        collateral = "aa" * 32 + ":0"
        self.node.handlers["listunspent"] = lambda address: [
            {**utxo("aa", 0, 1000 * COIN), "collateral": True}]
        self.node.handlers["getmasternodes"] = lambda: [
            {"pubkey": "11" * 32, "collateral": collateral, "leaving": False}]
        status, _, err = self.run_cli("masternode", "deregister", "--key", self.key_file)
        self.assertEqual(status, 0, err)
        tx = self.sent_tx()
        self.assertEqual([i.prevout for i in tx.inputs], [OutPoint(b"\xaa" * 32, 0)])
        self.assertEqual(tx.outputs[0].key_hash, PrivateKey.devnet(0).key_hash)
        self.node.handlers["getmasternodes"] = lambda: []
        status, _, err = self.run_cli("masternode", "deregister", "--key", self.key_file)
        self.assertEqual(status, 1)
        self.assertIn("no such registered masternode", err)
