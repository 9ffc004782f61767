"""Amounts, keys, addresses, fees and coin selection for the command line."""

import re
from decimal import Decimal

from timecoin.cli.registry import CommandError, UsageError
from timecoin.ledger.keys import AddressError, KeyFileError, PrivateKey, decode_address
from timecoin.ledger.networks import COIN, MAX_SUPPLY
from timecoin.ledger.tx import MAX_INPUTS, MIN_FEE_RATE, OutPoint

#: The smallest default fee, in units (0.0001 TIME).
MIN_DEFAULT_FEE = 10_000
#: Encoded size of a transfer: fixed part, per input, per output (bytes).
TX_BASE_SIZE, TX_INPUT_SIZE, TX_OUTPUT_SIZE = 15, 132, 28

_AMOUNT_RE = re.compile(r"\+?([0-9]+(\.[0-9]*)?|\.[0-9]+)")


def parse_amount(text, what="amount"):
    """Decimal TIME ``text`` → integer units; :class:`UsageError` unless 0 < x ≤ supply.

    At most 8 decimal places (trailing zeros aside); no exponent, minus sign or NaN.
    """
    text = text.strip()
    if text.startswith("-"):
        raise UsageError(f"{what} must be greater than 0, not {text}")
    if not _AMOUNT_RE.fullmatch(text):
        raise UsageError(f"{what} {text!r} is not a decimal amount of TIME")
    value = Decimal(text)
    if value > Decimal(MAX_SUPPLY) / COIN:
        raise UsageError(f"{what} {text} exceeds the supply of {MAX_SUPPLY // COIN} TIME")
    units = value * COIN
    if units != units.to_integral_value():
        raise UsageError(f"{what} {text} has more than 8 decimal places")
    if units <= 0:
        raise UsageError(f"{what} must be greater than 0")
    return int(units)


def format_time(units):
    """Integer units as a decimal TIME string with 8 places."""
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(int(units)), COIN)
    return f"{sign}{whole}.{frac:08d}"


def load_key(path):
    """The key in ``path``; :class:`UsageError` if it cannot be read."""
    try:
        return PrivateKey.load(path)
    except KeyFileError as e:
        raise UsageError(str(e)) from None


def check_address(text, network):
    """The key hash in ``text``; :class:`UsageError` if it is not an address of ``network``."""
    try:
        return decode_address(text, network.network_id)[1]
    except AddressError as e:
        raise UsageError(str(e)) from None


# -- coin selection and fees ---------------------------------------------------

def estimate_size(n_inputs, n_outputs, payload=0):
    """The exact encoded size of a transaction with these counts and ``payload``
    bytes (signatures are fixed-size)."""
    return TX_BASE_SIZE + TX_INPUT_SIZE * n_inputs + TX_OUTPUT_SIZE * n_outputs + payload


def default_fee(n_inputs, n_outputs=2, payload=0):
    """``max(MIN_FEE_RATE × size, 0.0001 TIME)`` in units."""
    return max(MIN_FEE_RATE * estimate_size(n_inputs, n_outputs, payload), MIN_DEFAULT_FEE)


def spendable(utxos):
    """``listunspent`` entries a payment may use: finalized, and not a
    masternode's collateral (spending that would deregister it)."""
    return [u for u in utxos if u.get("status") == "unspent" and not u.get("collateral")]


def select_coins(utxos, amount, fee=None, payload=0):
    """Pick finalized outputs covering ``amount`` + fee: ``(chosen, fee, change)``.

    ``utxos`` is ``listunspent``'s answer; only ``status == "unspent"`` entries
    that are not collateral are used (:func:`spendable`), largest first, at most
    ``MAX_INPUTS``. ``chosen`` is a list of ``(OutPoint, amount)``. With
    ``fee=None`` the fee is :func:`default_fee` for the inputs taken, two
    outputs and ``payload`` bytes. :class:`CommandError` if short.
    """
    usable = sorted(spendable(utxos), key=lambda u: (-int(u["amount"]), u["txid"], int(u["vout"])))
    chosen, total, need = [], 0, amount + (fee or 0)
    for u in usable[:MAX_INPUTS]:
        chosen.append((OutPoint(bytes.fromhex(u["txid"]), int(u["vout"])), int(u["amount"])))
        total += int(u["amount"])
        paid = default_fee(len(chosen), 2, payload) if fee is None else fee
        if total >= amount + paid:
            return chosen, paid, total - amount - paid
        need = amount + paid
    available = sum(int(u["amount"]) for u in usable)
    waiting = sum(int(u["amount"]) for u in utxos if u.get("status") != "unspent")
    if available >= need:
        raise CommandError(
            f"insufficient funds: the {MAX_INPUTS} largest outputs hold {format_time(total)}"
            f" TIME, {format_time(need)} TIME needed; consolidate them first")
    extra = f" ({format_time(waiting)} TIME more not final yet)" if waiting else ""
    raise CommandError(
        f"insufficient funds: {format_time(need)} TIME needed (amount + fee), "
        f"{format_time(available)} TIME spendable{extra}")


