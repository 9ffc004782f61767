"""``timecoin devnet`` when a node cannot start: the real reason, and no stale cookie."""

import os

from twisted.internet import defer, protocol, reactor
from twisted.trial import unittest

from tests.support import make_datadir
from timecoin.bench.command import free_base_port
from timecoin.cli.devnet import NodeProcess, port_free, start_network
from timecoin.cli.registry import CommandError


class PortsInUseTests(unittest.TestCase):
    """A second devnet on ports a first one holds is refused before anything starts."""

    @defer.inlineCallbacks
    def test_ports_held_are_named(self):
        held = reactor.listenTCP(0, protocol.Factory(), interface="127.0.0.1")
        self.addCleanup(held.stopListening)
        port = held.getHost().port
        self.assertFalse(port_free(port))
        directory = make_datadir(self)
        with self.assertRaises(CommandError) as caught:
            yield start_network(reactor, 1, directory, port - 1)
        message = str(caught.exception)
        self.assertIn(f"{port}", message.split(" on 127.0.0.1")[0])
        self.assertIn("on 127.0.0.1 already in use", message)
        self.assertFalse(os.path.exists(os.path.join(directory, "node0")))


class ReasonTests(unittest.TestCase):
    """``NodeProcess.reason``: stderr's last line, else this run's log tail."""

    def test_log_tail_of_this_run_only(self):
        datadir = make_datadir(self)
        log = os.path.join(datadir, "node.log")
        with open(log, "w") as f:
            f.write("old run: timecoin: error: an earlier failure\n")
        node = NodeProcess(0, datadir, 1, 2)
        self.assertEqual(node.reason(), f"nothing logged; see {log}")
        with open(log, "a") as f:
            f.write("starting\nCannot listen: Address already in use\nmore\n")
        self.assertEqual(node.reason(), f"more (log: {log})")
        with open(log, "a") as f:
            f.write("twisted.internet.error.CannotListenError: Couldn't listen\nbye\n")
        self.assertEqual(node.reason(), "twisted.internet.error.CannotListenError: "
                         f"Couldn't listen (log: {log})")
        node.errReceived(b"timecoin: error: the real reason\n\n")
        self.assertEqual(node.reason(), "timecoin: error: the real reason")


class FailingNodeTests(unittest.TestCase):
    """A real node that cannot start: its reason is in the error; no cookie is left."""

    timeout = 120

    @defer.inlineCallbacks
    def test_damaged_database(self):
        directory = make_datadir(self)
        datadir = os.path.join(directory, "node0")
        os.makedirs(datadir, mode=0o700)
        with open(os.path.join(datadir, "chain.sqlite3"), "wb") as f:
            f.write(b"this is not a database" * 100)
        with self.assertRaises(CommandError) as caught:
            yield start_network(reactor, 1, directory, free_base_port(1))
        message = str(caught.exception)
        self.assertIn("node 0 exited with status 1", message)
        self.assertIn("is damaged or not a timecoin database", message)
        self.assertEqual(len(message.splitlines()), 1)
        self.assertFalse(os.path.exists(os.path.join(datadir, ".cookie")))
