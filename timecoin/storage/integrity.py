"""Checking a node database against itself: meta, UTXO rows, set hash, journal.

``PRAGMA quick_check`` (run at every open) finds damaged pages, but not a
damaged value inside an intact page, nor an index that disagrees with its
table. These checks do:

* :func:`read_meta` reads the ``meta`` facts, each of the right type and size;
* :func:`check_utxo_set` decodes every ``utxos`` row (sizes and ranges) and
  recomputes the set's MuHash, count and total, to compare with ``meta``;
* :func:`check_journal` checks every journal record: sequence numbers without
  gaps, the txid is the hash of the stored encoding, the undo data has one
  entry per input; with ``fold=True`` it also folds the whole journal into a
  set hash, which must equal the stored one (journal vs tables);
* :func:`integrity_check` runs ``PRAGMA integrity_check`` (indexes vs tables).

Each raises :class:`DamageFound` with one line naming the damage. They run on
any connection, in one read transaction, so in WAL mode a second connection
can check a snapshot while the writer goes on.
"""

import hashlib
import struct

from timecoin.ledger.muhash import MuHash
from timecoin.ledger.networks import MAX_SUPPLY
from timecoin.ledger.tx import MAX_OUTPUTS, OutPoint, ledger_changes
from timecoin.ledger.utxo import utxo_element

UNDO = struct.Struct("<Q20s")
PROGRESS_EVERY = 50_000


class DamageFound(Exception):
    """The database contradicts itself; the message names the damage in one line."""


def _never():
    return False


class Cancelled(Exception):
    """A check was stopped before it finished (the node is stopping)."""


_META_KINDS = {
    "genesis_hash": "hash", "applied_seq": "count", "muhash": "muhash",
    "utxo_count": "count", "utxo_total": "count", "schema_version": "count",
}


def read_meta(conn):
    """``{key: value}`` of the meta facts, each checked; raises DamageFound."""
    rows = dict(conn.execute("SELECT key, value FROM meta"))
    out = {}
    for key, kind in _META_KINDS.items():
        if key not in rows:
            raise DamageFound(f"meta has no {key}")
        value = rows[key]
        if kind == "count":
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise DamageFound(f"meta {key} is not a non-negative integer ({value!r:.40})")
        elif kind == "hash":
            if not isinstance(value, bytes) or len(value) != 32:
                raise DamageFound(f"meta {key} is not a 32-byte hash")
        else:
            if not isinstance(value, bytes) or len(value) != 768:
                raise DamageFound("meta muhash is not a 768-byte set hash state")
            value = MuHash.deserialize(value)
        out[key] = value
    return out


def check_row(txid, vout, amount, key_hash):
    """The problem with one ``utxos`` row, or None."""
    if not isinstance(txid, bytes) or len(txid) != 32:
        return "a txid that is not 32 bytes"
    if isinstance(vout, bool) or not isinstance(vout, int) or not 0 <= vout < MAX_OUTPUTS:
        return f"output index {vout!r:.20}"
    if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount <= MAX_SUPPLY:
        return f"amount {amount!r:.30}"
    if not isinstance(key_hash, bytes) or len(key_hash) != 20:
        return "a key hash that is not 20 bytes"
    return None


def _read_transaction(conn):
    """Begin a read transaction unless one is open; True if this call began it."""
    if conn.in_transaction:
        return False
    conn.execute("BEGIN")
    return True


def _end(conn, began):
    if began and conn.in_transaction:
        conn.execute("COMMIT")


def check_utxo_set(conn, progress=None, cancelled=_never, batch=10_000):
    """Recompute the set from the ``utxos`` rows and compare with ``meta``.

    Fires ``progress(rows_done, rows_expected)`` every ``PROGRESS_EVERY`` rows;
    returns ``(hexdigest, count, total)``; raises DamageFound or Cancelled.
    """
    began = _read_transaction(conn)
    try:
        meta = read_meta(conn)
        expected = meta["utxo_count"]
        muhash, count, total = MuHash(), 0, 0
        cursor = conn.execute("SELECT txid, vout, amount, key_hash FROM utxos")
        while rows := cursor.fetchmany(batch):
            if cancelled():
                raise Cancelled()
            for txid, vout, amount, key_hash in rows:
                problem = check_row(txid, vout, amount, key_hash)
                if problem is not None:
                    where = txid.hex()[:16] if isinstance(txid, bytes) else "?"
                    raise DamageFound(f"utxos row {where}…:{vout!r:.10} has {problem}")
                muhash.add(utxo_element(OutPoint(txid, vout), amount, key_hash))
                count += 1
                total += amount
            if progress is not None and count // PROGRESS_EVERY != (count - len(rows)) // \
                    PROGRESS_EVERY:
                progress(count, expected)
        _compare("utxos table", (muhash.hexdigest(), count, total), meta)
        return muhash.hexdigest(), count, total
    finally:
        _end(conn, began)


def _compare(what, found, meta):
    digest, count, total = found
    if count != meta["utxo_count"]:
        raise DamageFound(f"the {what} holds {count} outputs, meta says {meta['utxo_count']}")
    if total != meta["utxo_total"]:
        raise DamageFound(f"the {what} holds {total} units, meta says {meta['utxo_total']}")
    if digest != meta["muhash"].hexdigest():
        raise DamageFound(f"the set hash of the {what} ({digest[:16]}…) differs from the "
                          f"stored one ({meta['muhash'].hexdigest()[:16]}…)")


def check_journal(conn, fold=False, progress=None, cancelled=_never, batch=5_000):
    """Check every journal record; with ``fold``, the journal up to ``applied_seq``
    must also add up to the stored set. Returns the number of records."""
    began = _read_transaction(conn)
    try:
        meta = read_meta(conn)
        applied = meta["applied_seq"]
        muhash, count, total = MuHash(), 0, 0
        expected_seq = 1
        cursor = conn.execute("SELECT seq, txid, raw, spent FROM transactions ORDER BY seq")
        while rows := cursor.fetchmany(batch):
            if cancelled():
                raise Cancelled()
            for seq, txid, raw, spent in rows:
                if seq != expected_seq:
                    raise DamageFound(f"journal record {expected_seq} is missing "
                                      f"(found {seq!r:.20} after {expected_seq - 1})")
                expected_seq += 1
                changes = _record_changes(seq, txid, raw, spent)
                if fold and seq <= applied:
                    prevouts, undo, outputs = changes
                    for (prev, vout), (amount, key_hash) in zip(prevouts, undo, strict=True):
                        muhash.remove(utxo_element(OutPoint(prev, vout), amount, key_hash))
                        count -= 1
                        total -= amount
                    for vout, (amount, key_hash) in enumerate(outputs):
                        muhash.add(utxo_element(OutPoint(txid, vout), amount, key_hash))
                        count += 1
                        total += amount
            if progress is not None:
                progress(expected_seq - 1, None)
        last = expected_seq - 1
        if applied > last:
            raise DamageFound(f"meta applied_seq {applied} is past the journal's end ({last})")
        if fold:
            _compare("journal", (muhash.hexdigest(), count, total), meta)
        return last
    finally:
        _end(conn, began)


def _record_changes(seq, txid, raw, spent):
    """``(prevouts, undo, outputs)`` of a journal record; raises DamageFound."""
    if not isinstance(raw, bytes) or not isinstance(txid, bytes) or not isinstance(spent, bytes):
        raise DamageFound(f"journal record {seq} has a value of the wrong type")
    if hashlib.blake2b(raw, digest_size=32).digest() != txid:
        raise DamageFound(f"journal record {seq}: the txid is not the hash of the stored "
                          "transaction")
    try:
        _, prevouts, outputs = ledger_changes(raw)
    except struct.error:
        raise DamageFound(f"journal record {seq}: the stored transaction is cut short") from None
    if len(spent) != UNDO.size * len(prevouts):
        raise DamageFound(f"journal record {seq}: undo data of the wrong size")
    return prevouts, list(UNDO.iter_unpack(spent)), outputs


def integrity_check(conn, limit=5):
    """``PRAGMA integrity_check`` (pages, records, and indexes against tables)."""
    problems = [row[0] for row in conn.execute(f"PRAGMA integrity_check({int(limit)})")]
    if problems != ["ok"]:
        raise DamageFound("integrity check: " + "; ".join(p.replace("\n", " ")
                                                          for p in problems))
