"""The API over real HTTP on 127.0.0.1: methods, auth, and the invalid-transaction table."""

import json
import os
import threading

import treq
from twisted.internet import defer, reactor
from twisted.trial import unittest

from tests.support import (
    FEE,
    api_url,
    cookie,
    devnet_funding,
    make_datadir,
    start_node,
    transfer,
)
from timecoin.api.client import RpcAuthError, RpcClient, RpcError
from timecoin.ledger.keys import PrivateKey
from timecoin.ledger.networks import COIN, DEVNET, MAX_SUPPLY, TESTNET
from timecoin.ledger.tx import (
    KIND_GENESIS,
    MAX_INPUTS,
    MAX_TX_SIZE,
    OutPoint,
    Transaction,
    TxIn,
    TxOut,
    sign_transfer,
)

KEY0, OP0, AMOUNT0 = devnet_funding(0)
KEY3, OP3, AMOUNT3 = devnet_funding(3)
KEY1 = PrivateKey.devnet(1)
DEST = PrivateKey.devnet(7)


def corrupt_signature(tx):
    sig = bytearray(tx.inputs[0].signature)
    sig[0] ^= 1
    i = tx.inputs[0]
    return Transaction((TxIn(i.prevout, i.pubkey, bytes(sig)),), tx.outputs, tx.network_id)


def raw_with_amount(amount):
    good = transfer(KEY0, [OP0], [(1000, DEST.key_hash)])
    # Rewrite the first output's u64 in place: the signature then fails, but the
    # amount check runs first, as a node must refuse the value before verifying.
    raw = bytearray(good.raw)
    offset = 3 + 4 + 132 + 4
    raw[offset:offset + 8] = amount.to_bytes(8, "little")
    return bytes(raw).hex()


def invalid_cases(spent_op, spent_key):
    """``(name, hex, expected reason code)``: one per way a transaction is wrong."""
    good = transfer(KEY0, [OP0], [(COIN, DEST.key_hash)], total=AMOUNT0)
    key2, op2, amount2 = devnet_funding(2)
    return [
        ("bad signature", corrupt_signature(good).hex(), "bad-signature"),
        ("key does not own the output", transfer(KEY1, [OP3], [(COIN, DEST.key_hash)],
                                                 total=AMOUNT3).hex(), "pubkey-mismatch"),
        ("another network's transaction", transfer(KEY0, [OP0], [(COIN, DEST.key_hash)],
                                                   total=AMOUNT0,
                                                   network_id=TESTNET.network_id).hex(),
         "wrong-network"),
        ("duplicate input", sign_transfer(KEY0, [OP0, OP0], [(COIN, DEST.key_hash)],
                                          DEVNET.network_id).hex(), "duplicate-input"),
        ("missing input", transfer(KEY0, [OutPoint(b"\x42" * 32, 0)],
                                   [(COIN, DEST.key_hash)]).hex(), "missing-input"),
        ("already-spent input", transfer(spent_key, [spent_op], [(COIN, DEST.key_hash)],
                                         fee=FEE + 1).hex(), "input-spent"),
        ("outputs above inputs", transfer(key2, [op2], [(amount2 + 1, DEST.key_hash)]).hex(),
         "outputs-exceed-inputs"),
        ("zero amount", transfer(KEY0, [OP0], [(0, DEST.key_hash)]).hex(), "zero-amount"),
        ("negative amount (two's complement)", raw_with_amount(2**64 - 5), "amount-too-large"),
        ("amount above the supply", transfer(KEY0, [OP0], [(MAX_SUPPLY + 1, DEST.key_hash)]).hex(),
         "amount-too-large"),
        ("overflowing sum", transfer(KEY0, [OP0], [(MAX_SUPPLY, DEST.key_hash)] * 3).hex(),
         "outputs-overflow"),
        ("too many inputs", (bytes([1, 0, 2]) + (MAX_INPUTS + 1).to_bytes(4, "little")
                             + bytes(200)).hex(), "malformed"),
        ("oversized", bytes(MAX_TX_SIZE + 1).hex(), "too-large"),
        ("truncated", good.raw[:-7].hex(), "malformed"),
        ("trailing bytes", (good.raw + b"\0\0").hex(), "malformed"),
        ("garbage", os.urandom(64).hex(), "malformed"),
        ("not hexadecimal", "zz" * 40, "malformed"),
        ("empty", "", "malformed"),
        ("no inputs", Transaction((), (TxOut(COIN, DEST.key_hash),), 2).hex(), "no-inputs"),
        ("no outputs", sign_transfer(KEY0, [OP0], [], DEVNET.network_id).hex(), "no-outputs"),
        ("fee too low", transfer(KEY3, [OP3], [(COIN, DEST.key_hash)], fee=10,
                                 total=AMOUNT3).hex(), "fee-too-low"),
        ("genesis kind", Transaction((), (TxOut(COIN, DEST.key_hash),), 2, KIND_GENESIS).hex(),
         "unsupported-kind"),
        ("unknown version", Transaction((), (TxOut(COIN, DEST.key_hash),), 2, 0, b"",
                                        9).hex(), "unsupported-version"),
        ("payload on a transfer", sign_transfer(KEY0, [OP0], [(COIN, DEST.key_hash)],
                                                DEVNET.network_id, payload=b"x").hex(),
         "payload-not-allowed"),
    ]


class RpcTests(unittest.TestCase):
    """Signatures verified by worker processes, as the preset has it."""

    config_text = ""

    @defer.inlineCallbacks
    def setUp(self):
        datadir = make_datadir(self)
        with open(os.path.join(datadir, "timecoin.toml"), "w") as f:
            f.write(self.config_text)
        # Without blocks: these tests compare the UTXO set and the height over
        # seconds of real time (blocks over RPC: tests/test_devnet_blocks.py).
        self.node = yield start_node(self, reactor, datadir, blocks=False)
        self.url = api_url(self.node)
        self.rpc = RpcClient(self.url, cookie(self.node), reactor=reactor)
        self.addCleanup(self.rpc.close)

    @defer.inlineCallbacks
    def send(self, tx):
        txid = yield self.rpc.call("sendrawtransaction", tx.hex())
        result = yield self.rpc.call("waitfortransaction", txid, 10)
        return result

    @defer.inlineCallbacks
    def test_send_and_finalize(self):
        self.assertEqual(self.node.verifier.workers, 0 if self.config_text else 2)
        tx = transfer(KEY0, [OP0], [(5 * COIN, DEST.key_hash)], total=AMOUNT0)
        result = yield self.send(tx)
        self.assertEqual(result["status"], "finalized")
        self.assertEqual(result["txid"], tx.txid.hex())
        self.assertEqual(result["hex"], tx.hex())
        self.assertIsNone(result["block_height"])
        self.assertGreaterEqual(result["finality_ms"], 0)
        balance = yield self.rpc.call("getbalance", DEST.address())
        self.assertEqual(balance["finalized"], AMOUNT0 + 5 * COIN)
        unspent = yield self.rpc.call("listunspent", DEST.address())
        self.assertIn({"txid": tx.txid.hex(), "vout": 0, "amount": 5 * COIN,
                       "status": "unspent", "collateral": False}, unspent)
        again = yield self.rpc.call("gettransaction", tx.txid.hex())
        self.assertEqual(again["status"], "finalized")

    @defer.inlineCallbacks
    def test_invalid_transactions_each_get_their_reason(self):
        spender = transfer(KEY0, [OP0], [(COIN, DEST.key_hash)], total=AMOUNT0)
        yield self.send(spender)
        before = yield self.rpc.call("gettxoutsetinfo")
        cases = invalid_cases(OP0, KEY0)
        self.assertGreaterEqual(len(cases), 20)
        for name, hex_tx, reason in cases:
            try:
                yield self.rpc.call("sendrawtransaction", hex_tx)
            except RpcError as e:
                self.assertIn(e.code, (-25, -26), name)
                self.assertTrue(e.message.startswith(reason), f"{name}: {e.message}")
                self.assertNotIn("\n", e.message)
            else:
                self.fail(f"{name} was accepted")
        after = yield self.rpc.call("gettxoutsetinfo")
        self.assertEqual(before, after)
        info = yield self.rpc.call("getmempoolinfo")
        self.assertEqual(info["size"], 0)

    @defer.inlineCallbacks
    def test_double_spend_in_one_batch_and_resubmission(self):
        a = transfer(KEY0, [OP0], [(COIN, DEST.key_hash)], total=AMOUNT0)
        b = transfer(KEY0, [OP0], [(2 * COIN, DEST.key_hash)], total=AMOUNT0)
        results = yield self.rpc.batch([("sendrawtransaction", [a.hex()]),
                                        ("sendrawtransaction", [b.hex()]),
                                        ("sendrawtransaction", [a.hex()])])
        self.assertEqual(results[0], a.txid.hex())
        # Locked while the first is decided, or spent once it is: refused either way.
        self.assertTrue(results[1].message.startswith(("input-locked", "input-spent")),
                        results[1].message)
        self.assertTrue(results[2].message.startswith("already-known"))
        final = yield self.rpc.call("waitfortransaction", a.txid.hex(), 10)
        self.assertEqual(final["status"], "finalized")
        bad = corrupt_signature(a)
        for expected in ("bad-signature", "recently-rejected"):
            e = yield self.assertFailure(self.rpc.call("sendrawtransaction", bad.hex()), RpcError)
            self.assertTrue(e.message.startswith(expected), e.message)

    @defer.inlineCallbacks
    def test_queries(self):
        info = yield self.rpc.call("getinfo")
        self.assertEqual(info["network"], "devnet")
        self.assertEqual(info["height"], 0)
        self.assertEqual(info["masternodes_active"], 1)
        for key in ("best_block_hash", "peers", "mempool_size", "utxo_set_hash", "version"):
            self.assertIn(key, info)
        self.assertEqual((yield self.rpc.call("getblockcount")), 0)
        block = yield self.rpc.call("getblock", 0)
        self.assertEqual(block["hash"], info["best_block_hash"])
        same = yield self.rpc.call("getblock", block["hash"])
        self.assertEqual(same, block)
        genesis_tx = yield self.rpc.call("gettransaction", block["txids"][0])
        self.assertEqual((genesis_tx["status"], genesis_tx["block_height"]), ("confirmed", 0))
        masternodes = yield self.rpc.call("getmasternodes")
        self.assertEqual(masternodes[0]["address"], KEY0.address())
        self.assertTrue(masternodes[0]["active"])
        outset = yield self.rpc.call("gettxoutsetinfo")
        self.assertEqual(outset["hash"], info["utxo_set_hash"])
        self.assertEqual((yield self.rpc.call("getpeerinfo")), [])
        mempool = yield self.rpc.call("getmempoolinfo")
        self.assertEqual(set(mempool), {"size", "bytes", "max_bytes", "min_fee_rate"})

    @defer.inlineCallbacks
    def test_errors(self):
        for call, code in ((("nosuchmethod",), -32601), (("getblock", 99), -5),
                           (("gettransaction", "ab"), -32602),
                           (("gettransaction", "00" * 32), -5),
                           (("getbalance", "TIME2nonsense"), -5),
                           (("getbalance", KEY0.address(TESTNET.network_id)), -5),
                           (("getinfo", 1, 2), -32602),
                           (("waitfortransaction", "00" * 32, -1), -32602)):
            e = yield self.assertFailure(self.rpc.call(*call), RpcError)
            self.assertEqual(e.code, code, call)

    @defer.inlineCallbacks
    def test_wait_times_out_as_pending_or_not_found(self):
        e = yield self.assertFailure(self.rpc.call("waitfortransaction", "11" * 32, 0.05),
                                     RpcError)
        self.assertEqual(e.code, -5)

    @defer.inlineCallbacks
    def test_auth_and_malformed_requests(self):
        bad = RpcClient(self.url, ("__cookie__", "wrong"), reactor=reactor)
        self.addCleanup(bad.close)
        yield self.assertFailure(bad.call("getinfo"), RpcAuthError)
        auth = cookie(self.node)
        response = yield treq.post(self.url + "/rpc", data=b"{not json", auth=auth,
                                   persistent=False)
        body = json.loads((yield response.content()))
        self.assertEqual(body["error"]["code"], -32700)
        response = yield treq.post(self.url + "/rpc", data=b'{"id": 1}', auth=auth,
                                   persistent=False)
        body = json.loads((yield response.content()))
        self.assertEqual(body["error"]["code"], -32600)

    @defer.inlineCallbacks
    def test_health_and_metrics_need_no_auth(self):
        response = yield treq.get(self.url + "/health", persistent=False)
        self.assertEqual(response.code, 200)
        body = json.loads((yield response.content()))
        self.assertEqual(body["status"], "ok")
        tx = transfer(KEY0, [OP0], [(COIN, DEST.key_hash)], total=AMOUNT0)
        yield self.send(tx)
        response = yield treq.get(self.url + "/metrics", persistent=False)
        text = (yield response.text())
        self.assertIn("timecoin_tx_finalized_total 1.0", text)
        self.assertIn("timecoin_finality_seconds_bucket", text)
        self.assertIn("timecoin_mempool_size", text)
        self.assertIn("timecoin_signatures_pending 0.0", text)
        self.assertIn("timecoin_signature_worker_restarts_total 0.0", text)
        names = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")]
        self.assertTrue(all(n.startswith("timecoin_") for n in names), names)

    @defer.inlineCallbacks
    def test_metrics_are_collected_on_the_reactor_thread(self):
        """The node's state is only touched on the reactor thread: a scrape
        collected on another thread raced it (dictionary changed size)."""
        threads = []

        class Noting:
            def collect(self):
                threads.append(threading.current_thread())
                return []

        self.node.metrics.registry.register(Noting())
        del threads[:]  # registering collected once, to describe the collector
        response = yield treq.get(self.url + "/metrics", persistent=False)
        self.assertEqual(response.code, 200)
        self.assertTrue(response.headers.getRawHeaders(b"content-type")[0].startswith(
            b"text/plain; version=0.0.4"))
        self.assertIn("timecoin_mempool_size", (yield response.text()))
        self.assertEqual(threads, [threading.main_thread()])
        response = yield treq.get(self.url + "/metrics", persistent=False,
                                  headers={"Accept": "application/openmetrics-text"})
        self.assertTrue(response.headers.getRawHeaders(b"content-type")[0].startswith(
            b"application/openmetrics-text"))
        self.assertTrue((yield response.text()).endswith("# EOF\n"))

    def test_cookie_mode(self):
        path = os.path.join(self.node.datadir, ".cookie")
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
        self.assertEqual(cookie(self.node)[0], "__cookie__")


class InlineVerificationRpcTests(RpcTests):
    """The same, with signatures verified on the reactor thread: a call may then
    be answered at once, or wait on its inputs loading from storage."""

    config_text = "[validation]\nsignature_workers = 0\n"

    def test_the_verifier_is_the_configured_one(self):
        self.assertEqual(self.node.verifier.workers, 0)
