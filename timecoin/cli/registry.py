"""The subcommand registry, the context a command runs in, and output helpers.

A :class:`Command` holds a name, a help line, ``add_arguments(parser)`` and
``run(ctx)``, which returns an exit status or a Deferred of one. It raises
:class:`UsageError` for bad usage (exit 2) and :class:`CommandError` for other
failures (exit 1); errors from the node (:mod:`timecoin.api.client`) exit 1 too.
"""

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass

from twisted.internet import defer

from timecoin.api.client import RpcClient, read_credentials
from timecoin.ledger.networks import get_network

#: Seconds any RPC request may take (``waitfortransaction`` gets its own bound).
RPC_TIMEOUT = 30


class UsageError(Exception):
    """Bad usage: exit status 2, the message on stderr."""


class CommandError(Exception):
    """A command failed for a reason that is not bad usage: exit status 1."""


@dataclass(frozen=True)
class Command:
    """A subcommand: ``add_arguments(parser)`` then ``run(ctx)`` → exit status."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[["Context"], object]


COMMANDS: dict[str, Command] = {}


def register(command):
    """Add ``command`` (a :class:`Command`) to the subcommands; returns it."""
    COMMANDS[command.name] = command
    return command


def command(name, help, add_arguments=lambda parser: None):
    """Decorator form of :func:`register` for a ``run(ctx)`` function."""
    def deco(run):
        register(Command(name, help, add_arguments, run))
        return run
    return deco


class Context:
    """What a command runs with: ``reactor``, ``args``, ``network``, streams, ``rpc``."""

    def __init__(self, reactor, args, out=None, err=None, treq_client=None):
        self.reactor = reactor
        self.args = args
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.network = get_network(args.network)
        self.datadir = args.datadir or self.network.default_datadir()
        self.rpc_url = (args.rpc if args.rpc is not None
                        else f"http://127.0.0.1:{self.network.api_port}")
        self.auth = None
        self._treq_client = treq_client
        self._rpc = None

    @property
    def rpc(self):
        """The :class:`RpcClient` for the node (credentials read on first use)."""
        if self._rpc is None:
            self.auth = read_credentials(self.datadir)
            self._rpc = RpcClient(self.rpc_url, self.auth, self._treq_client,
                                  reactor=self.reactor,
                                  timeout=None if self._treq_client else RPC_TIMEOUT)
        return self._rpc

    def close(self):
        return self._rpc.close() if self._rpc is not None else defer.succeed(None)

    def print(self, *lines):
        for line in lines:
            self.out.write(f"{line}\n")

    def emit(self, obj, *lines):
        """Print ``obj`` as JSON with ``--json``, else ``lines``."""
        if self.args.json:
            self.out.write(json.dumps(obj, indent=2, sort_keys=True) + "\n")
        else:
            self.print(*lines)


# -- output helpers --------------------------------------------------------------

def format_cell(value):
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def format_fields(obj):
    """``key: value`` lines for a JSON object."""
    width = max((len(k) for k in obj), default=0)
    return [f"{k + ':':<{width + 1}} {format_cell(v)}" for k, v in obj.items()]


def format_table(rows, columns, empty):
    """An aligned text table of ``rows`` (dicts) on ``columns``; ``empty`` if none."""
    if not rows:
        return [empty]
    cells = [[format_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    for row in cells:
        lines.append("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    return lines


