"""``timecoin masternode register|deregister``: masternodes by collateral.

``register`` pays the tier's collateral to the key's own address and
registers the masternode in the same transaction (or, with ``--collateral``,
re-creates an existing output of exactly the tier's amount as the
collateral); ``deregister`` spends the collateral back to its owner.
"""

from twisted.internet import defer

from timecoin.cli.commands import submit_and_report
from timecoin.cli.registry import Command, CommandError, UsageError
from timecoin.cli.wallet import (
    TX_INPUT_SIZE,
    check_address,
    default_fee,
    format_time,
    load_key,
    select_coins,
    spendable,
)
from timecoin.ledger.registration import PAYLOAD_SIZE, TIERS, Registration
from timecoin.ledger.tx import OutPoint, sign_registration, sign_transfer


def parse_outpoint(text):
    """``TXID:VOUT`` → :class:`OutPoint`; :class:`UsageError` if it is not one."""
    txid, sep, vout = text.partition(":")
    try:
        if not sep or len(txid) != 64:
            raise ValueError
        return OutPoint(bytes.fromhex(txid), int(vout))
    except ValueError:
        raise UsageError(f"{text!r} is not TXID:VOUT") from None


def _common(p):
    p.add_argument("--key", required=True, metavar="FILE",
                   help="the key that owns (or will own) the collateral")
    p.add_argument("--wait", action="store_true", help="wait until the transaction is final")
    p.add_argument("--timeout", type=int, default=60, metavar="SECONDS",
                   help="how long --wait waits (default 60)")


def add_arguments(parser):
    from timecoin.cli import add_common_options  # the package loads this module

    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    reg = actions.add_parser("register", help="register a masternode by collateral")
    add_common_options(reg, suppress=True)
    _common(reg)
    reg.add_argument("--masternode-key", required=True, metavar="FILE",
                     help="the masternode's key (the node runs with --masternode-key FILE)")
    reg.add_argument("--tier", required=True, choices=sorted(TIERS, key=lambda t:
                                                              TIERS[t].collateral))
    reg.add_argument("--reward-address", metavar="ADDRESS",
                     help="where rewards go (default: the key's address)")
    reg.add_argument("--collateral", metavar="TXID:VOUT",
                     help="an output of the key of exactly the tier's amount to use")
    dereg = actions.add_parser("deregister", help="spend the collateral back to its owner")
    add_common_options(dereg, suppress=True)
    _common(dereg)
    dereg.add_argument("--masternode-key", metavar="FILE",
                       help="which masternode (default: the key's only one)")
    dereg.add_argument("--collateral", metavar="TXID:VOUT", help="which collateral")


def _check_timeout(args):
    if args.timeout <= 0:
        raise UsageError("--timeout must be positive")


def _registration_inputs(utxos, tier, collateral, reannounce=False):
    """``(prevouts, change)`` of a registration whose output 0 is ``tier``'s
    collateral: new, or the existing output ``collateral`` re-created
    (``reannounce``: it is the collateral of the masternode announcing again)."""
    if collateral is None:
        chosen, _fee, change = select_coins(utxos, tier.collateral, payload=PAYLOAD_SIZE)
        return [op for op, _ in chosen], change
    mine = {OutPoint(bytes.fromhex(u["txid"]), int(u["vout"])): u for u in utxos}
    entry = mine.get(collateral)
    if entry is None or entry.get("status") != "unspent":
        raise CommandError(f"{collateral} is not a finalized unspent output of the key")
    if entry.get("collateral") and not reannounce:
        raise CommandError(f"{collateral} is a registered masternode's collateral already")
    if int(entry["amount"]) != tier.collateral:
        raise CommandError(f"{collateral} holds {format_time(int(entry['amount']))} TIME; "
                           f"{tier.name} needs exactly {format_time(tier.collateral)} TIME")
    others = [u for u in utxos if u is not entry]
    if not spendable(others):
        raise CommandError("the key has no other finalized output to pay the fee")
    # The fee covers the collateral's input too (counted as extra bytes).
    chosen, _fee, change = select_coins(others, 0, payload=PAYLOAD_SIZE + TX_INPUT_SIZE)
    return [collateral] + [op for op, _ in chosen], change


@defer.inlineCallbacks
def run_register(ctx):
    a, nid = ctx.args, ctx.network.network_id
    _check_timeout(a)
    key, masternode = load_key(a.key), load_key(a.masternode_key)
    tier = TIERS[a.tier]
    reward = check_address(a.reward_address, ctx.network) if a.reward_address else key.key_hash
    collateral = parse_outpoint(a.collateral) if a.collateral else None
    known = yield ctx.rpc.call("getmasternodes")
    mine = [mn for mn in known if mn.get("pubkey") == masternode.pubkey.hex()]
    if mine and not mine[0].get("missed_service"):
        raise CommandError(f"masternode {masternode.pubkey.hex()} is registered already")
    if mine:
        # Deactivated for missed service: announcing again re-creates its
        # collateral (doc/masternodes.md, "Missed service").
        collateral = parse_outpoint(mine[0]["collateral"])
    utxos = list((yield ctx.rpc.call("listunspent", key.address(nid))))
    prevouts, change = _registration_inputs(utxos, tier, collateral, reannounce=bool(mine))
    outputs = [(tier.collateral, key.key_hash)] + ([(change, key.key_hash)] if change else [])
    tx = sign_registration(key, prevouts, outputs, nid,
                           Registration(tier.code, 0, masternode.pubkey, reward), masternode)
    extra = {"masternode": masternode.pubkey.hex(), "tier": tier.name,
             "collateral": f"{tx.txid.hex()}:0"}
    return (yield submit_and_report(ctx, tx, a.wait, a.timeout, extra))


@defer.inlineCallbacks
def run_deregister(ctx):
    a, nid = ctx.args, ctx.network.network_id
    _check_timeout(a)
    key = load_key(a.key)
    wanted = load_key(a.masternode_key).pubkey.hex() if a.masternode_key else None
    collateral = parse_outpoint(a.collateral) if a.collateral else None
    utxos = yield ctx.rpc.call("listunspent", key.address(nid))
    owned = {f"{u['txid']}:{u['vout']}": int(u["amount"]) for u in utxos
             if u.get("collateral") and u.get("status") == "unspent"}
    known = yield ctx.rpc.call("getmasternodes")
    mine = [mn for mn in known if mn.get("collateral") in owned and not mn.get("leaving")
            and (wanted is None or mn["pubkey"] == wanted)
            and (collateral is None or mn["collateral"] == str(collateral))]
    if not mine:
        raise CommandError("the key owns the collateral of no such registered masternode")
    if len(mine) > 1:
        raise CommandError(f"the key owns {len(mine)} masternodes' collateral; name one "
                           "with --masternode-key or --collateral")
    mn = mine[0]
    amount = owned[mn["collateral"]]
    fee = default_fee(1, 1)
    tx = sign_transfer(key, [parse_outpoint(mn["collateral"])],
                       [(amount - fee, key.key_hash)], nid)
    extra = {"masternode": mn["pubkey"], "collateral": mn["collateral"]}
    return (yield submit_and_report(ctx, tx, a.wait, a.timeout, extra))


def run(ctx):
    return run_register(ctx) if ctx.args.action == "register" else run_deregister(ctx)


COMMAND = Command("masternode", "register a masternode by collateral, or deregister it",
                  add_arguments, run)
