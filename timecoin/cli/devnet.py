"""``timecoin devnet --nodes N``: a local network of N masternodes on 127.0.0.1.

Node ``i`` listens for peers on ``P + 2i`` and serves its API on ``P + 2i + 1``
(``P`` is ``--base-port``, 24200 by default), keeps its data in
``DIR/node<i>`` and logs to ``DIR/node<i>/node.log``; the genesis registers
the development keys 0..N-1 as masternodes, and node ``i`` runs as masternode
``i``. Funded development key files are written to ``DIR/keys``. The command
stays in the foreground; Ctrl-C or SIGTERM stops every node gracefully
(SIGTERM, then waiting for each to flush and exit).

:func:`start_network` and :class:`LocalNetwork` are usable on their own (the
load generator starts networks with them).
"""

import os
import shlex
import socket
import sys

import treq
from twisted.internet import defer, protocol, task
from twisted.logger import Logger

from timecoin.cli.registry import Command, CommandError, UsageError
from timecoin.ledger.keys import PrivateKey
from timecoin.ledger.networks import DEVNET

DEFAULT_DIR = os.path.join(DEVNET.default_datadir(), "local")
FUNDED_KEY_FILES = 10
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 60.0

#: Each node's config. The nodes share this machine's cores, so each verifies
#: signatures on its reactor thread rather than starting worker processes.
DEVNET_NODE_CONFIG = """# written by timecoin devnet
[node]
devnet_masternodes = {count}

[validation]
signature_workers = 0
"""


class NodeProcess(protocol.ProcessProtocol):
    """One ``twistd -n timecoin`` child of the local network."""

    log = Logger()

    def __init__(self, index, datadir, p2p_port, api_port):
        self.index = index
        self.datadir = datadir
        self.p2p_port = p2p_port
        self.api_port = api_port
        self.ended = defer.Deferred()
        self.exit_code = None
        self.stderr = b""
        log = os.path.join(datadir, "node.log")
        #: Where this run's part of the log starts (earlier runs append to it too).
        self.log_start = os.path.getsize(log) if os.path.exists(log) else 0

    @property
    def api_url(self):
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def pid(self):
        return self.transport.pid if self.transport is not None else None

    def errReceived(self, data):
        self.stderr = (self.stderr + data)[-4000:]

    def processEnded(self, reason):
        code = reason.value.exitCode
        self.exit_code = code if code is not None else -(reason.value.signal or 0)
        if self.exit_code not in (0, -15):
            # A node that failed leaves no cookie behind for the CLI to trip on.
            try:
                os.unlink(os.path.join(self.datadir, ".cookie"))
            except FileNotFoundError:
                pass
        self.ended.callback(self.exit_code)

    @property
    def cli_prefix(self):
        """The ``timecoin`` command line that talks to this node."""
        return (f"timecoin --rpc {self.api_url} --datadir {shlex.quote(self.datadir)}")

    def reason(self):
        """Why the node ended: its last line on stderr, else the last lines of
        its log written by this run (the log file's path if both are empty)."""
        lines = [line for line in self.stderr.decode(errors="replace").splitlines()
                 if line.strip()]
        if lines:
            return lines[-1].strip()
        log = os.path.join(self.datadir, "node.log")
        try:
            with open(log, "rb") as f:
                f.seek(self.log_start)
                tail = f.read()[-4000:].decode(errors="replace")
        except OSError:
            tail = ""
        lines = [line.strip() for line in tail.splitlines() if line.strip()]
        if not lines:
            return f"nothing logged; see {log}"
        errors = [line for line in lines if "error" in line.lower() or "Error" in line]
        return (errors or lines)[-1] + f" (log: {log})"

    def describe(self):
        return {"index": self.index, "api_url": self.api_url, "datadir": self.datadir,
                "p2p": f"127.0.0.1:{self.p2p_port}", "pid": self.pid,
                "log": os.path.join(self.datadir, "node.log"), "cli": self.cli_prefix}


class LocalNetwork:
    """The processes of a local devnet, and the key files it funded."""

    def __init__(self, reactor, directory, nodes, key_files):
        self.reactor = reactor
        self.directory = directory
        self.nodes = nodes
        self.key_files = key_files
        self.stopping = False

    def describe(self):
        return {"dir": self.directory, "nodes": [n.describe() for n in self.nodes],
                "keys": self.key_files}

    @defer.inlineCallbacks
    def stop(self, timeout=STOP_TIMEOUT_S):
        """SIGTERM every node, wait for each to exit (SIGKILL after ``timeout``).

        twistd ends a SIGTERM'd node with that signal once it has flushed, so
        ``-15`` is a clean exit here."""
        self.stopping = True
        for node in self.nodes:
            if node.exit_code is None:
                node.transport.signalProcess("TERM")
        timer = self.reactor.callLater(timeout, self._kill_remaining)
        codes = yield defer.gatherResults([n.ended for n in self.nodes])
        if timer.active():
            timer.cancel()
        return codes

    def _kill_remaining(self):
        for node in self.nodes:
            if node.exit_code is None:
                node.transport.signalProcess("KILL")


def prepare_directory(directory, count):
    """Node directories, masternode keys and configs, and funded key files."""
    os.makedirs(os.path.join(directory, "keys"), exist_ok=True)
    key_files = []
    for i in range(max(count, FUNDED_KEY_FILES)):
        key = PrivateKey.devnet(i)
        path = os.path.join(directory, "keys", f"dev{i}.key")
        if not os.path.exists(path):
            key.save(path, DEVNET.network_id)
        key_files.append({"index": i, "address": key.address(DEVNET.network_id),
                          "key_file": path})
    for i in range(count):
        datadir = os.path.join(directory, f"node{i}")
        os.makedirs(datadir, mode=0o700, exist_ok=True)
        with open(os.path.join(datadir, "timecoin.toml"), "w") as f:
            f.write(DEVNET_NODE_CONFIG.format(count=count))
    return key_files


def _twistd_args(node, count, base_port, key_file):
    args = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()", "-n",
            "--pidfile=", "--logfile", os.path.join(node.datadir, "node.log"), "timecoin",
            "--network", "devnet", "--datadir", node.datadir,
            "--p2p", f"tcp:{node.p2p_port}:interface=127.0.0.1",
            "--api", f"tcp:{node.api_port}:interface=127.0.0.1",
            "--masternode-key", key_file]
    for j in range(node.index):
        args += ["--peer", f"127.0.0.1:{base_port + 2 * j}"]
    return args


@defer.inlineCallbacks
def wait_healthy(reactor, node, timeout):
    """Fire once ``node``'s ``/health`` answers; :class:`CommandError` if it exits
    first or does not answer within ``timeout`` seconds."""
    deadline = reactor.seconds() + timeout
    while True:
        if node.exit_code is not None:
            raise CommandError(f"node {node.index} exited with status {node.exit_code}: "
                               f"{node.reason()}")
        try:
            response = yield treq.get(node.api_url + "/health", persistent=False, timeout=2,
                                      reactor=reactor)
            yield response.content()
            if response.code == 200:
                return
        except Exception:
            pass
        if reactor.seconds() > deadline:
            raise CommandError(f"node {node.index} did not answer within {timeout:.0f}s")
        yield task.deferLater(reactor, 0.1, lambda: None)


@defer.inlineCallbacks
def start_network(reactor, count, directory=DEFAULT_DIR, base_port=DEVNET.p2p_port,
                  env=None):
    """Start ``count`` masternodes; fire with a :class:`LocalNetwork` once all answer."""
    if count < 1:
        raise UsageError("--nodes must be at least 1")
    if not 1024 <= base_port <= 65535 - 2 * count:
        raise UsageError(f"--base-port must leave room for {2 * count} ports below 65536")
    busy = [port for port in range(base_port, base_port + 2 * count) if not port_free(port)]
    if busy:
        raise CommandError(
            f"port{'s' if len(busy) > 1 else ''} {', '.join(map(str, busy))} on 127.0.0.1 "
            f"already in use (another devnet running?); stop it or pick --base-port")
    directory = os.path.abspath(os.path.expanduser(directory))
    key_files = prepare_directory(directory, count)
    nodes = []
    network = LocalNetwork(reactor, directory, nodes, key_files)
    try:
        for i in range(count):
            node = NodeProcess(i, os.path.join(directory, f"node{i}"), base_port + 2 * i,
                               base_port + 2 * i + 1)
            key_file = key_files[i]["key_file"]
            args = _twistd_args(node, count, base_port, key_file)
            reactor.spawnProcess(node, sys.executable, args, env=env or dict(os.environ))
            nodes.append(node)
            yield wait_healthy(reactor, node, START_TIMEOUT_S)
    except BaseException:
        yield network.stop()
        raise
    return network


def port_free(port):
    """True if nothing listens on (or holds) TCP ``port`` of 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as twisted listens
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _add_arguments(parser):
    parser.add_argument("--nodes", type=int, required=True, help="number of masternodes")
    parser.add_argument("--dir", default=DEFAULT_DIR, help="directory of the nodes' data")
    parser.add_argument("--base-port", type=int, default=DEVNET.p2p_port,
                        help="node i uses P+2i (P2P) and P+2i+1 (API)")


@defer.inlineCallbacks
def _run(ctx):
    args = ctx.args
    if args.network != "devnet":
        raise UsageError("timecoin devnet runs devnet nodes only")
    network = yield start_network(ctx.reactor, args.nodes, args.dir, args.base_port)
    info = network.describe()
    lines = [f"devnet of {args.nodes} masternodes in {info['dir']}"]
    for node in info["nodes"]:
        lines.append(f"  node {node['index']}: api {node['api_url']}  p2p {node['p2p']}  "
                     f"data {node['datadir']}")
        lines.append(f"    {node['cli']} info")
    lines.append("funded development keys:")
    for key in info["keys"]:
        lines.append(f"  {key['index']}: {key['address']}  {key['key_file']}")
    lines.append("Ctrl-C stops every node.")
    ctx.emit(info, *lines)
    ctx.out.flush()
    stopped = defer.Deferred()
    ctx.reactor.addSystemEventTrigger("before", "shutdown", network.stop)
    for node in network.nodes:
        node.ended.addCallback(lambda code, n=node: _node_ended(ctx, network, n, stopped))
    code = yield stopped
    return code


def _node_ended(ctx, network, node, stopped):
    if stopped.called or network.stopping:
        return
    if node.exit_code is not None:
        ctx.err.write(f"timecoin: error: node {node.index} exited with status "
                      f"{node.exit_code}: {node.reason()}; stopping the network\n")
        network.stop().addBoth(lambda _: stopped.called or stopped.callback(1))


COMMAND = Command("devnet", "start a local network of N masternodes on 127.0.0.1",
                  _add_arguments, _run)
