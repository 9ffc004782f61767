"""``POST /``: bitcoind's JSON-RPC 1.0 style, spoken by bitcoin client libraries."""

import json

import treq
from bitcoinrpc.authproxy import AuthServiceProxy, JSONRPCException
from twisted.internet import defer, reactor, threads
from twisted.trial import unittest

from tests.support import api_url, cookie, start_node
from timecoin.api import jsonrpc
from timecoin.ledger.tx import MIN_FEE_RATE


def proxy_url(node):
    user, password = cookie(node)
    return api_url(node).replace("http://", f"http://{user}:{password}@") + "/"


def blocking_calls(url, calls):
    """Run ``calls`` (``(method, args)``) through one ``AuthServiceProxy``; each
    result, or the ``JSONRPCException``'s error object. Runs in a thread."""
    proxy = AuthServiceProxy(url, timeout=30)
    out = []
    for method, args in calls:
        try:
            out.append(getattr(proxy, method)(*args))
        except JSONRPCException as e:
            out.append(("error", e.error))
    return out


class AuthServiceProxyTests(unittest.TestCase):
    """python-bitcoinrpc against a real node on 127.0.0.1, with the cookie."""

    @defer.inlineCallbacks
    def test_methods_errors_and_batches(self):
        node = yield start_node(self, reactor)
        url = proxy_url(node)
        results = yield threads.deferToThread(blocking_calls, url, [
            ("getblockcount", ()),
            ("getinfo", ()),
            ("getmempoolinfo", ()),
            ("help", ("getblock",)),
            ("nosuchmethod", ()),
            ("gettransaction", ("00" * 32,)),
            ("getblock", ("not a height",)),
        ])
        count, info, mempool, help_, unknown, missing, bad = results
        self.assertEqual(count, node.queries.height())
        self.assertEqual(info["network"], "devnet")
        self.assertEqual(info["height"], count)
        self.assertEqual(mempool["min_fee_rate"], MIN_FEE_RATE)
        self.assertEqual(help_["method"], "getblock")
        self.assertEqual(unknown, ("error", {"code": -32601,
                                             "message": "method not found: nosuchmethod"}))
        self.assertEqual(missing[1]["code"], -5)
        self.assertEqual(bad[1]["code"], -32602)
        batch = yield threads.deferToThread(
            lambda: AuthServiceProxy(url, timeout=30).batch_([["getblockcount"], ["help"]]))
        self.assertEqual(batch[0], count)
        self.assertIn("getinfo", [m["method"] for m in batch[1]])

    @defer.inlineCallbacks
    def test_wrong_password_is_refused(self):
        node = yield start_node(self, reactor)
        url = api_url(node).replace("http://", "http://__cookie__:wrong@") + "/"

        def call():
            try:
                AuthServiceProxy(url, timeout=30).getblockcount()
            except JSONRPCException as e:
                return e.error
            return None
        error = yield threads.deferToThread(call)
        self.assertIsNotNone(error)  # a 401 is no JSON: the library reports it


class LegacyFramingTests(unittest.TestCase):
    """Replies always hold result, error and id; statuses are bitcoind's."""

    @defer.inlineCallbacks
    def post(self, node, body):
        response = yield treq.post(api_url(node) + "/", data=json.dumps(body).encode(),
                                   auth=cookie(node), persistent=False,
                                   headers={b"Content-Type": [b"text/plain"]})
        content = yield response.json()
        return response.code, content

    @defer.inlineCallbacks
    def test_result_error_and_id_always_present(self):
        node = yield start_node(self, reactor)
        code, reply = yield self.post(node, {"method": "getblockcount", "params": [],
                                             "id": "a", "version": "1.1"})
        self.assertEqual((code, reply), (200, {"result": node.queries.height(),
                                               "error": None, "id": "a"}))
        code, reply = yield self.post(node, {"method": "nosuch", "params": [], "id": 7})
        self.assertEqual(code, 404)
        self.assertEqual(reply, {"result": None, "id": 7, "error": {
            "code": -32601, "message": "method not found: nosuch"}})
        code, reply = yield self.post(node, {"method": "getblock", "params": [-1], "id": 8})
        self.assertEqual(code, 500)
        self.assertEqual(reply["error"]["code"], -32602)
        self.assertIsNone(reply["result"])
        code, reply = yield self.post(node, {"method": 5, "id": 9})
        self.assertEqual((code, reply["error"]["code"], reply["id"]), (400, -32600, 9))
        code, reply = yield self.post(node, [{"method": "getblockcount", "id": 1},
                                             {"method": "nosuch", "id": 2}])
        self.assertEqual(code, 200)
        self.assertEqual([set(r) for r in reply], [{"result", "error", "id"}] * 2)
        self.assertEqual(reply[1]["error"]["code"], -32601)

    @defer.inlineCallbacks
    def test_unauthenticated_is_refused(self):
        node = yield start_node(self, reactor)
        response = yield treq.post(api_url(node) + "/", data=b'{"method": "getinfo"}',
                                   persistent=False)
        self.assertEqual(response.code, 401)
        yield response.content()

    def test_unrepresentable_result_keeps_both_members(self):
        data, problem = jsonrpc.encode_response(jsonrpc.legacy_result(1, float("nan")))
        self.assertIsNotNone(problem)
        reply = json.loads(data)
        self.assertEqual(set(reply), {"result", "error", "id"})
        self.assertIsNone(reply["result"])
        self.assertEqual(reply["error"]["code"], -32603)
        data, _ = jsonrpc.encode_response(jsonrpc.result(1, float("inf")))
        self.assertNotIn("result", json.loads(data))
