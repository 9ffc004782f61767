"""``timecoin bench``: offer a steady load of payments to a devnet and measure
finalized throughput, finality times and the nodes' CPU and memory.

The network is either running already (``--rpc URL`` with ``--datadir DIR``
for its cookie, both repeatable, or ``--devnet-dir DIR`` made by ``timecoin
devnet --dir DIR``) or started for the run (``--nodes N``) in a temporary
directory on free ports and stopped at the end. See ``doc/bench.md``.
"""

import json
import os
import random
import shutil
import socket
import tempfile
from urllib.parse import urlsplit

from twisted.internet import defer, task

from timecoin.api.client import RpcClient, read_credentials
from timecoin.bench.chart import write_png
from timecoin.bench.plan import FIRST_KEY, MAX_TXS, total_txs
from timecoin.bench.report import build_report, format_report
from timecoin.bench.run import LoadRun, make_clients, prepare
from timecoin.bench.watch import FinalityWatcher
from timecoin.cli.registry import Command, CommandError, UsageError
from timecoin.ledger.networks import DEVNET

LOCAL_HOSTS = ("127.0.0.1", "localhost")


def _add_arguments(parser):
    # --rpc and --datadir are common options; here they may be repeated.
    for container in (parser, parser._optionals):
        container.conflict_handler = "resolve"
    parser.add_argument("--rpc", dest="rpc_urls", metavar="URL", action="append", default=[],
                        help="API URL of a node to load (repeatable; 127.0.0.1 only)")
    parser.add_argument("--datadir", dest="datadirs", metavar="DIR", action="append",
                        default=[], help="data directory of the --rpc node, for its cookie "
                        "(repeatable, in the same order; one serves all)")
    parser.add_argument("--devnet-dir", metavar="DIR",
                        help="directory of a running `timecoin devnet --dir DIR`")
    parser.add_argument("--base-port", type=int, default=DEVNET.p2p_port,
                        help="base port of that devnet (node i's API is P+2i+1)")
    parser.add_argument("--nodes", type=int,
                        help="start a devnet of N masternodes for the run instead")
    parser.add_argument("--rate", type=float, default=500.0, help="offered tx/s (default 500)")
    parser.add_argument("--duration", type=float, default=10.0,
                        help="measured seconds of load (default 10)")
    parser.add_argument("--warmup", type=float, default=0.0,
                        help="seconds of load before the measured window (default 0)")
    parser.add_argument("--senders", type=int, default=4,
                        help="concurrent sending clients, round-robin over the nodes")
    parser.add_argument("--poll-ms", type=float, default=20.0,
                        help="interval of finality polling (default 20)")
    parser.add_argument("--drain", type=float, default=30.0,
                        help="seconds to wait for finality after the load (default 30)")
    parser.add_argument("--max-txs", type=int, default=MAX_TXS,
                        help=f"cap on transactions (default {MAX_TXS})")
    parser.add_argument("--png", metavar="FILE", help="write a chart of the finality times "
                        "(CDF, p50/p95/p99; needs matplotlib: the `plot` extra)")


def _check_args(args):
    if args.network != "devnet":
        raise UsageError("timecoin bench runs on devnet only (it spends the development keys)")
    for name in ("rate", "duration"):
        if not getattr(args, name) > 0:
            raise UsageError(f"--{name} must be positive")
    if args.warmup < 0 or args.drain < 0 or args.poll_ms <= 0:
        raise UsageError("--warmup and --drain must not be negative, --poll-ms positive")
    if args.senders < 1 or not 1 <= args.max_txs <= MAX_TXS:
        raise UsageError(f"--senders must be at least 1, --max-txs 1 to {MAX_TXS}")
    given = [bool(args.nodes), bool(args.rpc_urls or args.rpc), bool(args.devnet_dir)]
    if sum(given) > 1 and not (args.devnet_dir and args.rpc_urls):
        raise UsageError("give either --nodes, --rpc or --devnet-dir")
    if args.nodes is not None and not 1 <= args.nodes <= FIRST_KEY:
        raise UsageError(f"--nodes must be 1 to {FIRST_KEY}")


def resolve_targets(args):
    """``[(url, auth)]`` of the nodes of a running network, from the arguments."""
    urls = list(args.rpc_urls) or ([args.rpc] if args.rpc else [])
    dirs = list(args.datadirs) or ([args.datadir] if args.datadir else [])
    if args.devnet_dir:
        root = os.path.abspath(os.path.expanduser(args.devnet_dir))
        found = sorted(int(name[4:]) for name in os.listdir(root)
                        if name.startswith("node") and name[4:].isdigit())
        if not found:
            raise UsageError(f"no node<i> directories in {root}")
        dirs = [os.path.join(root, f"node{i}") for i in found]
        urls = urls or [f"http://127.0.0.1:{args.base_port + 2 * i + 1}" for i in found]
    if not urls:
        urls = [f"http://127.0.0.1:{DEVNET.api_port}"]
        dirs = dirs or [DEVNET.default_datadir()]
    if len(dirs) == 1:
        dirs = dirs * len(urls)
    if len(dirs) != len(urls):
        raise UsageError(f"{len(urls)} --rpc URLs but {len(dirs)} data directories")
    for url in urls:
        if urlsplit(url).hostname not in LOCAL_HOSTS:
            raise UsageError(f"timecoin bench loads nodes on 127.0.0.1 only, not {url}")
    return [(url, read_credentials(d)) for url, d in zip(urls, dirs, strict=True)]


def _ephemeral_range():
    """The kernel's range of ports for outgoing connections (Linux), or IANA's."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(x) for x in f.read().split())
        return low, high
    except (OSError, ValueError):
        return 49152, 65535


def free_base_port(count, tries=50):
    """A base port P with P..P+2*count-1 all free on 127.0.0.1.

    P is picked outside the kernel's range of ports for outgoing connections:
    otherwise a node stopped and started again (a restart test) can find its
    port taken by some connection's local end in the meantime.
    """
    low, high = _ephemeral_range()
    spans = [(start, end) for start, end in ((10000, low), (high + 1, 65536))
             if end - start > 2 * count + 2]
    for _ in range(tries):
        start, end = random.choice(spans) if spans else (30000, 60000)
        base = random.randrange(start, end - 2 * count, 2)
        socks = []
        try:
            for port in range(base, base + 2 * count):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise CommandError("no free range of ports found on 127.0.0.1")


@defer.inlineCallbacks
def wait_connected(reactor, clients, timeout=60.0):
    """Fire once every node reports the others as peers."""
    deadline = reactor.seconds() + timeout
    want = len(clients) - 1
    while True:
        try:
            infos = yield defer.gatherResults([c.call("getinfo") for c in clients],
                                              consumeErrors=True)
        except defer.FirstError as e:
            # One line naming the node (a wrong --base-port, a node not running).
            raise e.subFailure.value from None
        if all(info["peers"] >= want for info in infos):
            return infos
        if reactor.seconds() > deadline:
            raise CommandError(f"the nodes did not connect to each other within {timeout:.0f}s")
        yield task.deferLater(reactor, 0.1, lambda: None)


@defer.inlineCallbacks
def run_bench(reactor, targets, *, rate, duration, warmup=0.0, senders=4, poll=0.02,
              tick=0.01, drain=30.0, max_txs=MAX_TXS, first_key=FIRST_KEY, note=None,
              progress=None, p2p_addresses=None):
    """Prepare, run and report one load run on the nodes ``[(url, auth)]``.

    With ``p2p_addresses`` (one per node), finality is watched through the
    nodes' finality events instead of RPC polling.
    """
    clients = make_clients(reactor, targets)
    extra = []
    watcher = None

    def make_client(node):
        url, auth = targets[node]
        extra.append(RpcClient(url, auth, reactor=reactor, timeout=60))
        return extra[-1]
    try:
        yield wait_connected(reactor, clients)
        count = total_txs(rate, warmup + duration, max_txs)
        note and note(f"preparing {count} transactions")
        txs, fanouts = yield prepare(clients, count, DEVNET.network_id, first_key)
        note and note(f"{fanouts} fan-out transactions finalized; sending")
        run = LoadRun(reactor, clients, [url for url, _ in targets], txs, rate,
                      senders=senders, make_client=make_client, warmup=warmup,
                      duration=duration, tick=tick, poll=poll, drain=drain, progress=progress)
        if p2p_addresses:
            genesis = yield clients[0].call("getblock", 0)
            watcher = FinalityWatcher(reactor, DEVNET, bytes.fromhex(genesis["hash"]),
                                      p2p_addresses, run.finality_event)
            yield watcher.start()
            run.watching = True
            note and note("watching finality events over the peer protocol")
        yield run.start()
        progress and progress("\n")
    finally:
        if watcher is not None:
            yield watcher.stop()
        yield defer.gatherResults([c.close() for c in clients + extra], consumeErrors=True)
    return build_report(run, {"nodes": len(targets), "rate": rate, "duration": duration,
                              "warmup": warmup, "senders": senders, "poll_ms": poll * 1000,
                              "transactions": count, "fanouts": fanouts})


@defer.inlineCallbacks
def _run(ctx):
    args = ctx.args
    _check_args(args)
    quiet = args.json
    progress = None
    if not quiet and getattr(ctx.err, "isatty", lambda: False)():
        def progress(text):
            ctx.err.write(text)
            ctx.err.flush()

    def note(text):
        if not quiet:
            ctx.err.write(f"timecoin bench: {text}\n")
    network = directory = trigger = None
    try:
        if args.nodes:
            from timecoin.cli.devnet import start_network
            directory = tempfile.mkdtemp(prefix="timecoin-bench-")
            base = free_base_port(args.nodes)
            note(f"starting {args.nodes} masternodes in {directory} (ports {base}+)")
            network = yield start_network(ctx.reactor, args.nodes, directory, base)
            trigger = ctx.reactor.addSystemEventTrigger("before", "shutdown", network.stop)
            targets = [(n.api_url, read_credentials(n.datadir)) for n in network.nodes]
            p2p = [f"127.0.0.1:{n.p2p_port}" for n in network.nodes]
        else:
            targets = resolve_targets(args)
            p2p = ([f"127.0.0.1:{args.base_port + 2 * i}" for i in range(len(targets))]
                   if args.devnet_dir and not args.rpc_urls else None)
        report = yield run_bench(
            ctx.reactor, targets, rate=args.rate, duration=args.duration, warmup=args.warmup,
            senders=args.senders, poll=args.poll_ms / 1000.0, drain=args.drain,
            max_txs=args.max_txs, first_key=max(FIRST_KEY, len(targets)), note=note,
            progress=progress, p2p_addresses=p2p)
    finally:
        if network is not None:
            note("stopping the nodes")
            yield network.stop()
            ctx.reactor.removeSystemEventTrigger(trigger)
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
    if args.png:
        if write_png(report, args.png):
            note(f"finality chart written to {args.png}")
        else:
            ctx.err.write("timecoin bench: matplotlib is not installed (pip install "
                          "'timecoin[plot]'); no chart written\n")
    report.pop("samples")
    if args.json:
        ctx.out.write(json.dumps(report, indent=2, sort_keys=True) + "\n")
    else:
        ctx.print(*format_report(report))
    return 0 if report["transactions"]["finalized"] else 1


COMMAND = Command("bench", "offer a steady load of payments to a devnet and measure it",
                  _add_arguments, _run)

__all__ = ["COMMAND", "free_base_port", "resolve_targets", "run_bench"]
