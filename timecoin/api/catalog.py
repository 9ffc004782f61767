"""The RPC methods, one declarative entry each: parameters, result and help.

Parameters are checked against this table before a method runs; the same
table answers the ``help`` method and is rendered into doc/rpc.md
(``python -m timecoin.api.reference``).
"""

from timecoin.api.params import (
    Choice,
    Either,
    Hex,
    HostAddress,
    Integer,
    MethodSpec,
    Number,
    Param,
    Text,
)
from timecoin.ledger.tx import MAX_TX_SIZE

#: Longest ``waitfortransaction`` timeout, in seconds.
MAX_WAIT_S = 600
#: Longest ban ``setban`` sets, in seconds (ten years).
MAX_BAN_S = 10 * 365 * 86_400

_TXID = Hex(32)
_ADDRESS = Text(128, min_length=1)

METHODS = (
    MethodSpec("getinfo", "The node's network, height and counts.",
               "network, height, best_block_hash, peers, masternodes_active, mempool_size, "
               "utxo_set_hash, version"),
    MethodSpec("sendrawtransaction", "Submit a signed transaction.",
               "the txid (an error with the reason if the transaction is refused)",
               (Param("hex", Text(2 * MAX_TX_SIZE + 2), "the serialized transaction, "
                      "hexadecimal"),)),
    MethodSpec("gettransaction", "The status of a transaction.",
               "txid, status (pending, finalized, rejected, confirmed; finalized, rejected "
               "and confirmed never change), reason (why rejected, or that a pending "
               "transaction's conflict set is stalled; null otherwise), block_height, "
               "finality_ms, hex", (Param("txid", _TXID, "the transaction id"),)),
    MethodSpec("waitfortransaction", "The status of a transaction once it is final, or at the "
               "timeout.", "as gettransaction (returns on the first final status)",
               (Param("txid", _TXID, "the transaction id"),
                Param("timeout_s", Number(0, MAX_WAIT_S), "seconds to wait at most", 60))),
    MethodSpec("getbalance", "Finalized and pending balance of an address.",
               '{"finalized": units, "pending": units}',
               (Param("address", _ADDRESS, "a timecoin address"),)),
    MethodSpec("listunspent", "Unspent outputs of an address.",
               "a list of {txid, vout, amount, status, collateral} (collateral: the output "
               "is a masternode's collateral; spending it deregisters the masternode)",
               (Param("address", _ADDRESS, "a timecoin address"),)),
    MethodSpec("getblockcount", "The best block height.", "the height (an integer)"),
    MethodSpec("getblock", "A block by height or hash.", "header fields and txids",
               (Param("height_or_hash",
                      Either(Integer(0, 2**63 - 1), Hex(32, "hexadecimal (a block hash)")),
                      "the block's height or hash"),)),
    MethodSpec("getblockheader", "A block's header and its commit certificate.",
               "header fields (height, hash, prev_hash, time, round, proposer, tx_root, "
               "utxo_set_hash, masternode_set_hash, reward, deactivated, missed, "
               "last_commit_hash) and commit (a list "
               "of {pubkey, signature}: the precommits of more than 2/3 of the active stake)",
               (Param("height_or_hash",
                      Either(Integer(0, 2**63 - 1), Hex(32, "hexadecimal (a block hash)")),
                      "the block's height or hash"),)),
    MethodSpec("getfinalityproof", "A finality proof of a transaction in a committed block, "
               "checkable offline knowing only the network's genesis (timecoin "
               "verify-proof; doc/proofs.md).",
               "{hex, block_height}: the proof's bytes, hexadecimal, and the height of the "
               "block holding the transaction (an error if the transaction is unknown, "
               "pending, rejected, or finalized but not in a block yet)",
               (Param("txid", _TXID, "the transaction id"),)),
    MethodSpec("getmempoolinfo", "Size and limits of the mempool.",
               "size, bytes, max_bytes, min_fee_rate (units per byte a new transaction "
               "must pay at least: 1, or more while the mempool is full)"),
    MethodSpec("gettxoutsetinfo", "The finalized UTXO set's summary.",
               "count, total_amount, hash (equal on every node in agreement)"),
    MethodSpec("getpeerinfo", "The connected peers.",
               "a list of {id, address, direction, version, ping_ms, banscore}"),
    MethodSpec("getmasternodes", "The registered masternodes.",
               "a list of {pubkey, address, tier, weight, collateral, reward_address, "
               "registered_height, active, online, leaving, missed_service} "
               "(registered_height null: "
               "pending until a block confirms it; active: in the active set; online: "
               "this node hears from it; leaving: its collateral was spent, it leaves "
               "at the next block; missed_service: deactivated for missed service, "
               "it rejoins by announcing again)"),
    MethodSpec("listbanned", "The banned peer addresses.",
               "a list of {address, banned_until, time_remaining, offences, reason}"),
    MethodSpec("setban", "Ban a peer address, or lift its ban.", "null",
               (Param("address", HostAddress(), "the peer's address (a port is ignored: "
                      "bans apply to the whole address)"),
                Param("command", Choice("add", "remove"), "add or remove the ban", "add"),
                Param("seconds", Number(0, MAX_BAN_S, above=True),
                      "how long the ban lasts (default: longer with each offence)", None))),
    MethodSpec("clearbanned", "Lift every ban.", "null"),
    MethodSpec("backup", "Copy the database while the node runs (SQLite's online backup), "
               "to restore by putting the copy in place of chain.sqlite3 while the node is "
               "stopped.", "{path, bytes}: the copy's path and size",
               (Param("directory", Text(4096, min_length=1), "an absolute directory to "
                      "write the copy into, created if missing (default: backups in the "
                      "data directory)", None),)),
    MethodSpec("help", "The method list, or one method's parameters and result.",
               "a list of {method, usage, help}, or one method's "
               "{method, usage, help, params, result}",
               (Param("method", Text(64, min_length=1), "a method name", None),)),
    MethodSpec("stop", "Stop the node gracefully.", '"timecoin stopping"'),
)

CATALOG = {spec.name: spec for spec in METHODS}
