"""Watch a timecoin node's transactions from another Twisted program.

Connects to one node as a peer (with a fresh identity key), completes the
authenticated handshake and prints each txid the node announces; with
``--finality`` it also subscribes to the node's finality events and prints
each decision (``finalized <txid> <ms>`` or ``rejected <txid> <reason>``)::

    python examples/watch_transactions.py --connect 127.0.0.1:24200 \\
        --network devnet --genesis <genesis hash hex> [--count N] [--tls] [--finality]

It never asks for the transactions themselves: it tells the node it already
has every txid, so only the announcements (``inv`` messages) arrive.
"""

import argparse
import sys

from twisted.internet import defer, task

import timecoin.finality.messages  # noqa: F401 - registers subscribe/finality_event
from timecoin import __version__
from timecoin.ledger.networks import get_network
from timecoin.p2p import ObserverHost, P2PConfig, PeerNetworkService, client_tls_options
from timecoin.p2p import messages as m


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connect", required=True, metavar="HOST:PORT")
    parser.add_argument("--network", default="devnet")
    parser.add_argument("--genesis", required=True, help="the node's genesis hash (hex)")
    parser.add_argument("--count", type=int, default=0, help="exit after N txids (0: never)")
    parser.add_argument("--tls", action="store_true", help="the node's port speaks TLS")
    parser.add_argument("--finality", action="store_true",
                        help="subscribe to finality events; --count then counts decisions")
    return parser.parse_args(argv)


def main(reactor, argv=None, out=None):
    """Run the watcher; a Deferred firing after ``--count`` txids."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    out = out or sys.stdout
    host = ObserverHost(get_network(args.network), bytes.fromhex(args.genesis),
                        f"{__version__}-watcher")
    network = PeerNetworkService(reactor, host, listen=None, seeds=[args.connect],
                                 config=P2PConfig(user_agent="timecoin-watcher"),
                                 client_tls=client_tls_options() if args.tls else None)
    done = defer.Deferred()
    heard = []

    def note(txid, line):
        heard.append(txid)
        out.write(line + "\n")
        out.flush()
        if args.count and len(heard) == args.count and not done.called:
            done.callback(heard)

    def on_inv(peer_id, message):
        for txid in message.txids:
            if not args.finality:
                note(txid, txid.hex())

    def on_event(peer_id, event):
        detail = f"{event.finality_ms}" if event.accepted else event.reason
        note(event.txid, f"{'finalized' if event.accepted else 'rejected'} "
                         f"{event.txid.hex()} {detail}")

    network.register_handler(m.INV, on_inv)
    network.register_handler(m.FINALITY_EVENT, on_event)
    if args.finality:
        network.add_ready_listener(
            lambda peer: network.send(peer.peer_id, timecoin.finality.messages.Subscribe()))
    network.startService()
    trigger = reactor.addSystemEventTrigger("before", "shutdown", network.stopService)

    def stop(result):
        reactor.removeSystemEventTrigger(trigger)
        return network.stopService().addCallback(lambda _: result)

    return done.addBoth(stop)


if __name__ == "__main__":
    task.react(main)
