"""The ``timecoin`` command line: keys, balances, payments and node queries.

``main`` is the console entry point; everything else takes the reactor and an
optional treq client so it can be driven without sockets (see
:func:`run_command`).

Subcommands live in a registry: a :class:`Command` holds a name, a help line,
a function adding its arguments to an ``argparse`` parser and a ``run(ctx)``
function returning an exit status (or a Deferred of one). A module adds its own
subcommand by defining ``COMMAND = Command(...)`` and having its
``"module:COMMAND"`` string listed in :data:`EXTRA_COMMANDS` (one line), or by
calling :func:`register` itself before :func:`build_parser` runs.

Exit status: 0 on success, 1 on an error reported by the node (or a node that
cannot be reached, or funds that do not cover a payment), 2 on bad usage.
"""

import argparse
import importlib
import os
import sys

from twisted.internet import defer

from timecoin import __version__
from timecoin.api.client import COOKIE_NAME, ApiUrlError, RpcAuthError, RpcClientError
from timecoin.cli import commands, proofs  # noqa: F401  (registers the built-in commands)
from timecoin.cli.registry import (
    COMMANDS,
    Command,
    CommandError,
    Context,
    UsageError,
    command,
    register,
)
from timecoin.ledger.networks import NETWORKS

__all__ = ["COMMANDS", "EXTRA_COMMANDS", "Command", "CommandError", "Context", "UsageError",
           "build_parser", "command", "main", "parse_args", "register", "run_args",
           "run_command"]

#: ``"module:ATTRIBUTE"`` strings naming further :class:`Command` objects
#: (for instance ``"timecoin.cli.devnet:COMMAND"``), loaded by :func:`build_parser`.
EXTRA_COMMANDS = ("timecoin.cli.devnet:COMMAND", "timecoin.cli.masternode:COMMAND",
                  "timecoin.bench.command:COMMAND")

class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"{self.format_usage()}{self.prog}: error: {message}")


def add_common_options(p, suppress):
    default = {"default": argparse.SUPPRESS} if suppress else {}
    p.add_argument("--network", choices=sorted(NETWORKS), help="default devnet",
                   **(default or {"default": "devnet"}))
    p.add_argument("--datadir", metavar="DIR", help="node data directory (for the RPC cookie)",
                   **(default or {"default": None}))
    p.add_argument("--rpc", metavar="URL", help="node API URL (default: 127.0.0.1, "
                   "the network's API port)", **(default or {"default": None}))
    p.add_argument("--json", action="store_true", help="machine-readable output",
                   **(default or {"default": False}))


def _load_extra_commands():
    for spec in EXTRA_COMMANDS:
        module, _, attr = spec.partition(":")
        cmd = getattr(importlib.import_module(module), attr or "COMMAND")
        if cmd.name not in COMMANDS:
            register(cmd)


def build_parser():
    """The ``timecoin`` argument parser with every registered subcommand."""
    _load_extra_commands()
    parser = _Parser(prog="timecoin", description="Talk to a timecoin node.")
    add_common_options(parser, suppress=False)
    parser.add_argument("--version", action="version", version=f"timecoin {__version__}")
    sub = parser.add_subparsers(dest="command_name", metavar="COMMAND", required=True)
    for cmd in COMMANDS.values():
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        add_common_options(p, suppress=True)
        cmd.add_arguments(p)
        p.set_defaults(command=cmd)
    return parser


def _report(failure, ctx):
    if failure.check(UsageError):
        ctx.err.write(f"timecoin: error: {failure.value}\n")
        return 2
    if failure.check(ApiUrlError):
        ctx.err.write(f"timecoin: error: --rpc: {failure.value}\n")
        return 2
    if failure.check(RpcAuthError) and ctx.auth is None:
        path = os.path.join(ctx.datadir, COOKIE_NAME)
        ctx.err.write(f"error: {failure.value} (no credentials: {path} not found)\n")
        return 1
    if failure.check(RpcClientError, CommandError):
        ctx.err.write(f"error: {failure.value}\n")
        return 1
    return failure


def parse_args(argv, err=None):
    """Parse ``argv``: the namespace, or an exit status (2 on bad usage, 0 after --help)."""
    try:
        return build_parser().parse_args(argv)
    except UsageError as e:
        (err or sys.stderr).write(f"{e}\n")
        return 2
    except SystemExit as e:  # --help
        return e.code or 0


def run_args(reactor, args, out=None, err=None, treq_client=None):
    """Run the command of parsed ``args``: a Deferred firing with the exit status."""
    ctx = Context(reactor, args, out, err, treq_client)
    d = defer.maybeDeferred(args.command.run, ctx)
    d.addCallback(lambda code: 0 if code is None else code)
    d.addErrback(_report, ctx)

    def closed(result):
        return ctx.close().addBoth(lambda _: result)
    return d.addBoth(closed)


def run_command(reactor, argv, out=None, err=None, treq_client=None):
    """Parse ``argv`` and run its command: a Deferred firing with the exit status.

    ``treq_client`` (e.g. a ``treq.testing.StubTreq``) replaces the HTTP client.
    """
    args = parse_args(argv, err)
    if isinstance(args, int):
        return defer.succeed(args)
    return run_args(reactor, args, out, err, treq_client)


def main(argv=None):
    """Console entry point: run the command on the global reactor and exit with its status.

    Bad usage exits before the reactor starts.
    """
    args = parse_args(argv)
    if isinstance(args, int):
        sys.exit(args)

    from twisted.internet.task import react

    def _main(reactor):
        def finish(code):
            if code:
                raise SystemExit(code)
        return run_args(reactor, args).addCallback(finish)

    react(_main)
