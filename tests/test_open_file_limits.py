"""The real daemon under a low open-file limit (``ulimit -n``), on 127.0.0.1:
hundreds of idle API connections do not keep a client out, and a start-up
that cannot spawn its signature workers ends at once with one line."""

import os
import resource

import treq
from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.trial import unittest

from tests.api_support import RawHttpFactory
from tests.support import make_datadir
from timecoin.api.client import RpcClient, read_cookie
from timecoin.testing.processes import is_running, run_twistd, start_daemon, worker_pids
from timecoin.testing.waiting import wait_until

IDLE_CONNECTIONS = 300
DAEMON_LIMIT = 256


def ensure_own_limit(needed):
    """Raise this process's soft open-file limit to ``needed`` (restored at the
    end by the caller), or skip if the hard limit is lower."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return soft, hard
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise unittest.SkipTest(f"the hard open-file limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    return soft, hard


class IdleConnectionsUnderLowLimit(unittest.TestCase):
    timeout = 120

    @defer.inlineCallbacks
    def metrics(self, url):
        """``{sample: value}`` from the daemon's ``/metrics``."""
        response = yield treq.get(url + "/metrics", persistent=False)
        text = yield response.text()
        return dict(line.rsplit(" ", 1) for line in text.splitlines()
                    if line and not line.startswith("#"))

    @defer.inlineCallbacks
    def test_300_idle_connections_do_not_keep_a_client_out(self):
        soft, hard = ensure_own_limit(IDLE_CONNECTIONS + 200)
        self.addCleanup(resource.setrlimit, resource.RLIMIT_NOFILE, (soft, hard))
        datadir = make_datadir(self)
        daemon = start_daemon(reactor, datadir, open_file_limit=DAEMON_LIMIT)
        self.addCleanup(daemon.kill)
        url = yield daemon.api_url
        metrics = yield self.metrics(url)
        cap = int(float(metrics["timecoin_api_connections_max"]))
        self.assertLess(cap, IDLE_CONNECTIONS)
        port = int(url.rsplit(":", 1)[1])
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port)
        idle = []
        for _ in range(IDLE_CONNECTIONS):
            idle.append((yield endpoint.connect(RawHttpFactory())))
        self.addCleanup(lambda: [c.transport.loseConnection() for c in idle if c.connected])
        # Each connection over the cap evicted the longest idle one.
        yield wait_until(reactor, lambda: sum(not c.connected for c in idle)
                         == IDLE_CONNECTIONS - cap)
        response = yield treq.get(url + "/health", persistent=False)
        self.assertEqual(response.code, 200)
        health = yield response.json()
        self.assertIn("status", health)
        rpc = RpcClient(url, read_cookie(datadir), reactor=reactor)
        info = yield rpc.call("getinfo")
        self.assertEqual(info["network"], "devnet")
        yield rpc.close()
        metrics = yield self.metrics(url)
        self.assertGreaterEqual(float(metrics["timecoin_api_connections_evicted_total"]),
                                IDLE_CONNECTIONS - cap + 1)  # and /health's
        self.assertEqual(float(metrics['timecoin_api_refused_total{reason="connection_cap"}']),
                         0)
        yield daemon.kill(15)
        self.assertNotIn(b"Traceback", daemon.output)
        self.assertNotIn(b"Too many open files", daemon.output)


class WorkersThatCannotSpawn(unittest.TestCase):
    timeout = 60

    #: Low enough that the signature workers' pipes cannot be made (the
    #: database and the reactor's own descriptors still open).
    LIMIT = 16

    @defer.inlineCallbacks
    def test_start_up_ends_with_one_line_and_nothing_left_running(self):
        datadir = make_datadir(self)
        out, err, code = yield run_twistd(
            reactor, "--network", "devnet", "--datadir", datadir,
            "--api", "tcp:0:interface=127.0.0.1", "--p2p", "tcp:0:interface=127.0.0.1",
            open_file_limit=self.LIMIT)
        self.assertEqual(code, 1, (out, err))
        self.assertNotIn(b"Traceback", out + err)
        lines = err.decode().strip().splitlines()
        self.assertEqual(len(lines), 1, err)
        self.assertTrue(lines[0].startswith("timecoin: error: cannot start the signature "
                                            "workers"), lines)
        self.assertIn("open-file limit", lines[0])
        self.assertNotIn(".cookie", os.listdir(datadir))  # no stale credentials
        # The database was closed: the next start (without the limit) opens it.
        daemon = start_daemon(reactor, datadir)
        self.addCleanup(daemon.kill)
        yield daemon.api_url
        yield wait_until(reactor, lambda: len(worker_pids(daemon.pid)) == 2)
        self.assertTrue(is_running(daemon.pid))
