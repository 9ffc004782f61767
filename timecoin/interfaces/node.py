"""The node's own parts: signature checks, its read side, metrics, and what the API asks."""

from zope.interface import Attribute, Interface


class ISignatureVerifier(Interface):
    """Checks the Ed25519 signatures of transactions, on the reactor thread or
    on worker processes; results come back on the reactor thread."""

    workers = Attribute("Number of worker processes (0: verifies on the calling thread).")
    restarts = Attribute("Times a worker ended unasked since start (each replaced, up to a limit).")

    def start():
        """Start the workers, if any."""

    def verify(tx):
        """Fire with None if every input's signature verifies; fail with
        ``TxRejected("bad-signature")`` if one does not."""

    def pending():
        """Number of transactions handed in and not yet reported."""

    def stop():
        """Report what was handed in, then end the workers; fires when done."""

    def abort():
        """End every worker at once, without waiting for answers (a start-up
        abandoned before the reactor runs)."""


class INodeComponents(Interface):
    """The node's components and state, as its read side and its metrics see them."""

    network = Attribute("The timecoin.ledger.networks.Network the node is on.")
    identity = Attribute("The node's timecoin.ledger.keys.PrivateKey.")
    version = Attribute("The software version string.")
    started_at = Attribute("When the node was made, on its clock.")
    state = Attribute("The IUtxoState.")
    mempool = Attribute("The IMempool.")
    journal = Attribute("The IJournal.")
    storage = Attribute("The IStorage.")
    chain = Attribute("The IBlockConsensus.")
    proofs = Attribute("The IFinalityProofs over the chain (hand-offs, proofs).")
    block_service = Attribute("The IBlockService, or None before one is attached.")
    finality = Attribute("The IFinality.")
    verifier = Attribute("The ISignatureVerifier.")
    peer_network = Attribute("The IPeerNetwork, or None before one is attached.")
    flush_error = Attribute("Message of the last failed UTXO flush, None once one succeeds.")
    storage_check = Attribute("The IStorageCheck of the database opened at start.")
    safety_incidents = Attribute("Safety incidents seen: certified blocks conflicting with "
                                 "transactions finalized here.")
    safety_incident = Attribute("The line naming the last safety incident, or None.")
    unwound = Attribute("``{txid: reason}`` of the finalized transactions a safety "
                        "incident unwound (now rejected).")

    def is_validating(txid):
        """True while ``txid`` is being verified or its inputs are loading."""


class INodeQueries(Interface):
    """The node's read side: what the API answers from (and the waiters it keeps)."""

    def info():
        """The ``getinfo`` dict."""

    def transaction_status(txid):
        """Fire with the ``gettransaction`` dict of ``txid``, or None if unknown."""

    def wait_for_transaction(txid, timeout_s):
        """Fire with the status once final (finalized/rejected) or at the timeout;
        with None at once if ``txid`` was dropped here (see ``drop_reason``)."""

    def finality_proof(txid):
        """Fire with ``(FinalityProof, block_height)`` for ``txid``, confirmed
        in a committed block; fail with ``ProofUnavailable`` (a ``reason``:
        ``unknown``, ``pending``, ``rejected``, ``not-in-block-yet``, or the
        chain's ``no-block``/``txid-not-in-block``/``missing-set``) if none
        can be built."""

    def drop_reason(txid):
        """Why this node let ``txid`` go without a decision lately (evicted, or
        its locks expired before any poll), or None. A dropped transaction is
        unknown here, not rejected: the network may still finalize it."""

    def wake(txid):
        """``txid`` was decided or refused: its waiters get its status now."""

    def unspent(address):
        """Fire with ``[(outpoint, amount, status_name)]`` of ``address``."""

    def is_collateral(outpoint):
        """True if ``outpoint`` is a registered masternode's collateral (spending
        it deregisters the masternode)."""

    def balance(address):
        """Fire with ``{"finalized": units, "pending": units}`` of ``address``."""

    def txoutset_info():
        """Count, total and hash of the finalized UTXO set."""

    def mempool_info():
        """The ``getmempoolinfo`` dict."""

    def height():
        """The best block height."""

    def chain_base():
        """The height of the snapshot the node joined from (0: it holds every
        block from the genesis); no block below it is held."""

    def block(height_or_hash):
        """The ``getblock`` dict, or None."""

    def block_header(height_or_hash):
        """The ``getblockheader`` dict (header fields and ``commit``), or None."""

    def masternodes():
        """The registered masternodes, as ``getmasternodes`` returns them."""

    def masternodes_active():
        """Number of active masternodes."""

    def peer_count():
        """Number of connected peers (0 without a peer network)."""

    def health():
        """The ``/health`` dict."""

    def stop():
        """Cancel the waiters' timer."""


class INodeMetrics(Interface):
    """The node's Prometheus metrics: events are counted as they happen."""

    registry = Attribute("The prometheus_client CollectorRegistry served at /metrics.")

    def accepted():
        """A submitted transaction was admitted."""

    def rejected_on_entry(code):
        """A submitted transaction was refused with ``code``."""

    def finalized(finality_ms):
        """A transaction finalized, ``finality_ms`` after it arrived (None: unknown)."""

    def dropped(cause):
        """An admitted transaction left without finalizing (rejected, evicted, expired)."""

    def synced():
        """A transaction was finalized from other masternodes' journals."""

    def recent_finality_ms():
        """The latest finality times in milliseconds (at most 100), oldest first."""

    def flushed(seconds):
        """A UTXO flush took ``seconds``."""


class INodeApi(Interface):
    """What the HTTP API and its RPC methods ask of the node."""

    reactor = Attribute("The IReactorTime the API schedules on.")
    queries = Attribute("The INodeQueries read side.")
    metrics = Attribute("The INodeMetrics served at /metrics.")
    peer_network = Attribute("The IPeerNetwork, or None without one.")

    def submit(tx, from_peer=False):
        """Validate, lock and start deciding ``tx``; fire with its txid or fail
        with ``TxRejected``."""

    def backup(directory=None):
        """Copy the database online into ``directory`` (default: the data
        directory's ``backups``); fire with ``{"path", "bytes"}``."""


class IUtxoFlusher(Interface):
    """Folds committed journal entries into the UTXO tables."""

    applied_seq = Attribute("Sequence of the last journal entry storage's UTXO tables hold.")
    error = Attribute("Message of the last failed flush, None once one succeeds.")

    def flush():
        """Apply what is committed (one batch); fire with the applied sequence."""

    def finish():
        """Wait for a flush under way, then flush what is left."""


class IDaemonNode(Interface):
    """What the daemon (``timecoin.tap``) asks of the node it runs."""

    storage = Attribute("The IStorage.")
    peer_network = Attribute("The IPeerNetwork, or None before one is attached.")
    cookie_cleanup = Attribute("Called once the daemon stopped (removes the API cookie), "
                               "or None.")
    on_storage_damage = Attribute("Called with one line if the storage check finds damage, "
                                  "or None.")

    def abandon_start():
        """Undo a start-up that failed part way, without the reactor: stop the
        timers, end the signature workers and the storage check, stop
        listening and close the database (its writer thread included), so the
        process can exit at once."""
