"""The built-in subcommands: keys, balance, send and node queries."""

import os
import re

from twisted.internet import defer

from timecoin.cli.registry import (
    RPC_TIMEOUT,
    CommandError,
    UsageError,
    command,
    format_cell,
    format_fields,
    format_table,
)
from timecoin.cli.wallet import check_address, format_time, load_key, parse_amount, select_coins
from timecoin.ledger.keys import PrivateKey
from timecoin.ledger.tx import sign_transfer


def write_key(ctx, key, path):
    """Save ``key`` to a new file ``path`` (never overwriting) and print its address."""
    if os.path.lexists(path):
        raise UsageError(f"refusing to overwrite existing file {path}")
    try:
        key.save(path, ctx.network.network_id)
    except OSError as e:
        raise UsageError(f"cannot write key file {path}: {e.strerror}") from None
    address = key.address(ctx.network.network_id)
    ctx.emit({"address": address, "key_file": os.path.abspath(path)}, address)
    return 0


# -- the commands ---------------------------------------------------------------

def _args_keygen(p):
    p.add_argument("--out", required=True, metavar="FILE", help="key file to create")


@command("keygen", "create a new key; prints its address", _args_keygen)
def run_keygen(ctx):
    return write_key(ctx, PrivateKey.generate(), ctx.args.out)


def _args_devnet_key(p):
    p.add_argument("index", type=int, metavar="N", help="index of the development key")
    _args_keygen(p)


@command("devnet-key", "write devnet genesis key N", _args_devnet_key)
def run_devnet_key(ctx):
    if ctx.args.index < 0:
        raise UsageError("N must be 0 or more")
    return write_key(ctx, PrivateKey.devnet(ctx.args.index), ctx.args.out)


@command("address", "print a key file's address",
         lambda p: p.add_argument("--key", required=True, metavar="FILE"))
def run_address(ctx):
    address = load_key(ctx.args.key).address(ctx.network.network_id)
    ctx.emit({"address": address}, address)
    return 0


@command("balance", "finalized and pending balance of an address",
         lambda p: p.add_argument("address", metavar="ADDRESS"))
@defer.inlineCallbacks
def run_balance(ctx):
    check_address(ctx.args.address, ctx.network)
    b = yield ctx.rpc.call("getbalance", ctx.args.address)
    ctx.emit({"address": ctx.args.address, **b},
             f"finalized: {format_time(b['finalized'])} TIME",
             f"pending:   {format_time(b['pending'])} TIME")
    return 0


def _args_send(p):
    p.add_argument("--key", required=True, metavar="FILE", help="the sender's key file")
    p.add_argument("--to", required=True, metavar="ADDRESS", help="the payee's address")
    p.add_argument("--amount", required=True, metavar="TIME", help="amount in TIME (decimal)")
    p.add_argument("--fee", metavar="TIME",
                   help="fee (default: 1 unit per byte, at least 0.0001 TIME)")
    p.add_argument("--wait", action="store_true", help="wait until the payment is final")
    p.add_argument("--timeout", type=int, default=60, metavar="SECONDS",
                   help="how long --wait waits (default 60)")
    p.add_argument("--hex-only", action="store_true",
                   help="print the signed transaction's hex; submit nothing")


@command("send", "pay an amount from a key to an address", _args_send)
@defer.inlineCallbacks
def run_send(ctx):
    a, nid = ctx.args, ctx.network.network_id
    if a.hex_only and a.wait:
        raise UsageError("--hex-only and --wait cannot be combined")
    if a.timeout <= 0:
        raise UsageError("--timeout must be positive")
    key = load_key(a.key)
    to_hash = check_address(a.to, ctx.network)
    amount = parse_amount(a.amount, "--amount")
    fee = parse_amount(a.fee, "--fee") if a.fee is not None else None
    utxos = yield ctx.rpc.call("listunspent", key.address(nid))
    try:
        chosen, fee, change = select_coins(list(utxos), amount, fee)
    except (AttributeError, KeyError, TypeError, ValueError):
        raise CommandError("unexpected answer to listunspent") from None
    outputs = [(amount, to_hash)] + ([(change, key.key_hash)] if change else [])
    tx = sign_transfer(key, [op for op, _ in chosen], outputs, nid)
    if a.hex_only:
        ctx.emit({"txid": tx.txid.hex(), "hex": tx.hex(), "fee": fee}, tx.hex())
        return 0
    return (yield submit_and_report(ctx, tx, a.wait, a.timeout))


@defer.inlineCallbacks
def submit_and_report(ctx, tx, wait, timeout, extra=None):
    """Submit ``tx``; print its txid (and with ``wait`` its final status and
    finality time); fire with the exit status. ``extra``: more JSON fields."""
    txid = yield ctx.rpc.call("sendrawtransaction", tx.hex())
    extra = extra or {}
    if not wait:
        ctx.emit({"txid": txid, "status": "pending", "finality_ms": None, **extra}, txid)
        return 0
    result = yield ctx.rpc.call("waitfortransaction", txid, timeout,
                                timeout=timeout + RPC_TIMEOUT)
    status, ms = result.get("status"), result.get("finality_ms")
    ctx.emit({"txid": txid, "status": status, "finality_ms": ms, **extra},
             txid, f"status: {status}", f"finality_ms: {format_cell(ms)}")
    if status in ("finalized", "confirmed"):
        return 0
    ctx.err.write(f"error: transaction {txid} is {status}"
                  f"{' after ' + str(timeout) + ' s' if status == 'pending' else ''}\n")
    return 1


_TXID_RE = re.compile(r"[0-9a-fA-F]{64}")


@command("tx", "show a transaction", lambda p: p.add_argument("txid", metavar="TXID"))
@defer.inlineCallbacks
def run_tx(ctx):
    if not _TXID_RE.fullmatch(ctx.args.txid):
        raise UsageError(f"{ctx.args.txid!r} is not a transaction id (64 hex digits)")
    result = yield ctx.rpc.call("gettransaction", ctx.args.txid.lower())
    ctx.emit(result, *format_fields(result))
    return 0


@command("block", "show a block: its header, commit certificate and txids",
         lambda p: p.add_argument("block", metavar="HEIGHT|HASH"))
@defer.inlineCallbacks
def run_block(ctx):
    """``getblockheader`` and ``getblock`` of a height or hash, merged."""
    text = ctx.args.block
    if text.isdigit():
        key = int(text)
    elif _TXID_RE.fullmatch(text):
        key = text.lower()
    else:
        raise UsageError(f"{text!r} is neither a height nor a block hash (64 hex digits)")
    header = yield ctx.rpc.call("getblockheader", key)
    block = yield ctx.rpc.call("getblock", key)
    result = dict(block)
    result.update(header)
    shown = dict(result)
    shown["commit"] = f"{len(result.get('commit') or [])} signatures"
    shown["txids"] = ", ".join(result.get("txids") or []) or "none"
    if not result.get("deactivated"):
        shown.pop("deactivated", None)
    ctx.emit(result, *format_fields(shown))
    return 0


@command("info", "the node's state")
@defer.inlineCallbacks
def run_info(ctx):
    result = yield ctx.rpc.call("getinfo")
    ctx.emit(result, *format_fields(result))
    return 0


@command("peers", "the node's peers")
@defer.inlineCallbacks
def run_peers(ctx):
    result = yield ctx.rpc.call("getpeerinfo")
    columns = ["id", "address", "direction", "version", "ping_ms", "banscore"]
    ctx.emit(result, *format_table(result, columns, "no peers"))
    return 0


@command("masternodes", "the masternodes the node knows")
@defer.inlineCallbacks
def run_masternodes(ctx):
    result = yield ctx.rpc.call("getmasternodes")
    columns = ["pubkey", "tier", "weight", "collateral", "reward_address",
               "registered_height", "active", "online"]
    ctx.emit(result, *format_table(result, columns, "no masternodes"))
    return 0




def _backup_arguments(parser):
    parser.add_argument("--to", metavar="DIR", default=None,
                        help="directory on the node's machine to write the copy into "
                             "(default: backups in the node's data directory)")


@command("backup", "copy the node's database while it runs", _backup_arguments)
@defer.inlineCallbacks
def run_backup(ctx):
    target = os.path.abspath(ctx.args.to) if ctx.args.to else None
    result = yield ctx.rpc.call("backup", target)
    ctx.emit(result, f"backup written to {result['path']} ({result['bytes']} bytes)")
    return 0
