"""A devnet of real ``twistd`` masternode processes on 127.0.0.1 whose nodes a test
can kill, freeze, thaw and restart one by one, over the same data directories
and ports."""

import os
import signal as signals
import sys

from twisted.internet import defer, protocol, reactor, task
from twisted.trial import unittest

from tests.support import make_datadir
from timecoin.api.client import RpcClient, read_cookie
from timecoin.bench.command import free_base_port
from timecoin.cli.devnet import DEVNET_NODE_CONFIG, NodeProcess, start_network, wait_healthy
from timecoin.ledger.keys import PrivateKey
from timecoin.testing.processes import exit_code, forget_child, spawn_child
from timecoin.testing.waiting import wait_until


class _Daemon(protocol.ProcessProtocol):
    def __init__(self):
        self.ended = defer.Deferred()
        self.exit_code = None
        self.pid = None

    def processEnded(self, reason):
        forget_child(self.pid)
        self.exit_code = exit_code(reason)
        self.ended.callback(self.exit_code)


class DevnetNode:
    """One masternode of a :class:`ProcessDevnet`: its ports, data directory and process."""

    def __init__(self, devnet, index):
        self.devnet = devnet
        self.index = index
        self.p2p_port = devnet.base_port + 2 * index
        self.api_port = self.p2p_port + 1
        self.datadir = os.path.join(devnet.directory, f"node{index}")
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.process = None
        self.rpc = None

    @property
    def running(self):
        return self.process is not None and not self.process.ended.called

    def _args(self):
        count = self.devnet.count
        args = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()", "-n",
                "--pidfile=", "--logfile", os.path.join(self.datadir, "node.log"), "timecoin",
                "--network", "devnet", "--datadir", self.datadir,
                "--p2p", f"tcp:{self.p2p_port}:interface=127.0.0.1",
                "--api", f"tcp:{self.api_port}:interface=127.0.0.1",
                "--masternode-key", os.path.join(self.datadir, "masternode.key")]
        for j in range(count):
            if j != self.index:
                args += ["--peer", f"127.0.0.1:{self.devnet.base_port + 2 * j}"]
        return args

    @defer.inlineCallbacks
    def start(self):
        """Start the process; fire once its API answers ``getinfo``."""
        reactor = self.devnet.reactor
        cookie = os.path.join(self.datadir, ".cookie")
        if os.path.exists(cookie):  # left by a kill -9: the new process writes a new one
            os.unlink(cookie)
        self.process = spawn_child(reactor, _Daemon(), self._args())

        def answering():
            return os.path.exists(os.path.join(self.datadir, ".cookie"))
        yield wait_until(reactor, lambda: answering() or not self.running, timeout=60)
        if not self.running:
            raise RuntimeError(f"node {self.index} exited: {self.log_tail()}")
        self.rpc = RpcClient(self.api_url, read_cookie(self.datadir), reactor=reactor)
        yield self.devnet.retry(lambda: self.rpc.call("getinfo"))

    def signal(self, sig):
        if self.running:
            self.process.transport.signalProcess(sig)

    @defer.inlineCallbacks
    def kill(self, sig=signals.SIGKILL):
        """End the process with ``sig`` (default: ``kill -9``); fire once it has ended."""
        if self.rpc is not None:
            yield self.rpc.close()
            self.rpc = None
        if self.running:
            if sig == signals.SIGKILL:
                self.signal(signals.SIGCONT)
            self.signal(sig)
            yield self.process.ended

    def log_tail(self, lines=20):
        try:
            with open(os.path.join(self.datadir, "node.log")) as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return "(no log)"


class ProcessDevnet:
    """``count`` devnet masternodes (the first ``count`` development keys), each a real
    ``twistd -n timecoin`` process peering with all the others on 127.0.0.1."""

    def __init__(self, reactor, directory, count, config_text=""):
        self.reactor = reactor
        self.directory = directory
        self.count = count
        self.base_port = free_base_port(count)
        self.nodes = [DevnetNode(self, i) for i in range(count)]
        for node in self.nodes:
            os.makedirs(node.datadir, mode=0o700, exist_ok=True)
            PrivateKey.devnet(node.index).save(os.path.join(node.datadir, "masternode.key"))
            with open(os.path.join(node.datadir, "timecoin.toml"), "w") as f:
                f.write(DEVNET_NODE_CONFIG.format(count=count) + config_text)

    @defer.inlineCallbacks
    def start(self, indexes=None):
        for i in range(self.count) if indexes is None else indexes:
            yield self.nodes[i].start()

    @defer.inlineCallbacks
    def stop(self):
        for node in self.nodes:
            yield node.kill(signals.SIGTERM)

    @defer.inlineCallbacks
    def retry(self, call, timeout=30):
        """``call()`` until it succeeds (a node still starting refuses connections)."""
        deadline = self.reactor.seconds() + timeout
        while True:
            try:
                result = yield call()
                return result
            except Exception:
                if self.reactor.seconds() > deadline:
                    raise
                yield task.deferLater(self.reactor, 0.2, lambda: None)

    def running(self):
        return [n for n in self.nodes if n.running]


@defer.inlineCallbacks
def start_extra_node(network, index, masternode_key=None, peers=None, extra_args=()):
    """Start one more ``twistd`` node beside a ``timecoin devnet`` network
    (:class:`~timecoin.cli.devnet.LocalNetwork`), on the same genesis, with an
    empty data directory ``node<index>`` and its own free ports, peering with
    ``peers`` (indexes; default all), with the daemon options ``extra_args``;
    it is stopped with the network. Fires
    with its :class:`~timecoin.cli.devnet.NodeProcess` once it is healthy."""
    base = free_base_port(1)
    node = NodeProcess(index, os.path.join(network.directory, f"node{index}"), base, base + 1)
    os.makedirs(node.datadir, mode=0o700)
    count = len(network.nodes)
    with open(os.path.join(node.datadir, "timecoin.toml"), "w") as f:
        f.write(DEVNET_NODE_CONFIG.format(count=count))
    args = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()", "-n",
            "--pidfile=", "--logfile", os.path.join(node.datadir, "node.log"), "timecoin",
            "--network", "devnet", "--datadir", node.datadir,
            "--p2p", f"tcp:{node.p2p_port}:interface=127.0.0.1",
            "--api", f"tcp:{node.api_port}:interface=127.0.0.1"]
    if masternode_key is not None:
        args += ["--masternode-key", masternode_key]
    for j in range(count) if peers is None else peers:
        args += ["--peer", f"127.0.0.1:{network.nodes[j].p2p_port}"]
    args += list(extra_args)
    network.reactor.spawnProcess(node, sys.executable, args, env=dict(os.environ))
    network.nodes.append(node)  # stopped with the others
    yield wait_healthy(network.reactor, node, 60)
    return node


class LocalNetworkTestCase(unittest.TestCase):
    """Tests on a ``timecoin devnet`` network of real processes: a started
    network, stopped at cleanup, and RPC clients closed at cleanup."""

    timeout = 240

    @defer.inlineCallbacks
    def start_devnet(self, count=4, directory=None):
        directory = directory or make_datadir(self)
        network = yield start_network(self.reactor, count, directory, free_base_port(count))
        self.addCleanup(lambda: network.stopping or network.stop())
        return network

    reactor = reactor

    def rpc(self, node):
        client = RpcClient(node.api_url, read_cookie(node.datadir), reactor=self.reactor)
        self.addCleanup(client.close)
        return client
