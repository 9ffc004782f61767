"""Prometheus metrics of one node, in a registry of its own.

Counters and histograms are updated on events; gauges of current sizes are
read from the node when scraped, so keeping them costs nothing in between.
Every name starts with ``timecoin_``.
"""

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

FINALITY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _NodeGauges:
    """Reads the node's current sizes at scrape time."""

    def __init__(self, node):
        self._node = node

    def collect(self):
        node = self._node
        values = {
            "timecoin_mempool_size": ("Pending transactions", node.mempool.size),
            "timecoin_mempool_bytes": ("Bytes of pending transactions", node.mempool.bytes),
            "timecoin_utxo_count": ("Finalized unspent outputs", node.state.count),
            "timecoin_utxo_cached": ("Outputs held in memory", len(node.state)),
            "timecoin_peers": ("Connected peers", node.peer_count()),
            "timecoin_masternodes_active": ("Active masternodes", node.masternodes_active()),
            "timecoin_journal_backlog": ("Finality records awaiting commit",
                                         node.journal.backlog),
            "timecoin_finality_in_flight": ("Transactions being decided",
                                            node.finality.in_flight()),
            "timecoin_block_height": ("Best block height", node.chain.height()),
            "timecoin_signatures_pending": ("Transactions awaiting signature verification",
                                            node.verifier.pending()),
            "timecoin_signature_worker_restarts": ("Signature workers that ended unasked",
                                                   node.verifier.restarts),
        }
        peak = _peak_rss_bytes()
        if peak is not None:
            values["timecoin_process_peak_rss_bytes"] = ("Peak resident memory", peak)
        for name, (doc, value) in values.items():
            yield GaugeMetricFamily(name, doc, value=value)
        yield from _finality_metrics(node.finality)


def _peak_rss_bytes():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _finality_metrics(finality):
    """Snowball's counters, where the finality component is Snowball."""
    engine = getattr(finality, "engine", None)
    if engine is None:
        return
    stats, polls = engine.stats, finality.polls.stats
    yield CounterMetricFamily("timecoin_snowball_preference_flips",
                              "Preference changes in conflict sets",
                              value=stats.preference_flips)
    yield CounterMetricFamily("timecoin_snowball_polls", "Polls finished",
                              value=polls.completed + polls.expired)
    yield CounterMetricFamily("timecoin_snowball_replies", "Validator replies received",
                              value=polls.replies)
    yield CounterMetricFamily("timecoin_snowball_missing_replies",
                              "Sampled validators that did not answer in time",
                              value=polls.missing_replies)
    yield CounterMetricFamily("timecoin_snowball_polls_early_terminated",
                              "Polls ended as soon as their outcome was certain",
                              value=polls.early_terminated)
    yield CounterMetricFamily("timecoin_snowball_polls_aborted",
                              "Attempts to poll refused: reachable stake below alpha",
                              value=polls.aborted)
    yield CounterMetricFamily("timecoin_snowball_votes", "Votes tallied, this node's included",
                              value=polls.votes)
    yield CounterMetricFamily("timecoin_snowball_stalled",
                              "Transactions that ran max_rounds undecided (still pending)",
                              value=stats.stalled)
    asked = polls.replies + polls.missing_replies
    yield GaugeMetricFamily("timecoin_snowball_validator_response_rate",
                            "Share of sampled validators that answered",
                            value=polls.replies / asked if asked else 1.0)
    rounds = sum(r * n for r, n in stats.rounds_to_accept.items())
    count = sum(stats.rounds_to_accept.values())
    yield GaugeMetricFamily("timecoin_snowball_rounds_per_finalized_tx",
                            "Mean rounds to finalize a transaction",
                            value=rounds / count if count else 0.0)


class NodeMetrics:
    """The node's metrics and the registry /metrics serves."""

    def __init__(self, node):
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._received = Counter("timecoin_tx_received", "Transactions submitted, by outcome",
                                 ["result"], registry=r)
        self._finalized = Counter("timecoin_tx_finalized", "Transactions finalized", registry=r)
        self._rejected = Counter("timecoin_tx_rejected",
                                 "Transactions rejected after admission, by cause",
                                 ["cause"], registry=r)
        self._finality = Histogram("timecoin_finality_seconds",
                                   "Time from arrival to finality", buckets=FINALITY_BUCKETS,
                                   registry=r)
        self._synced = Counter("timecoin_tx_synced",
                               "Transactions finalized from other masternodes' journals",
                               registry=r)
        self._flush = Histogram("timecoin_utxo_flush_seconds",
                                "Duration of UTXO table flushes", registry=r)
        self._accepted = self._received.labels("accepted")
        r.register(_NodeGauges(node))
        ProcessCollector(namespace="timecoin", registry=r)

    def accepted(self):
        self._accepted.inc()

    def rejected_on_entry(self, code):
        self._received.labels(code).inc()

    def finalized(self, finality_ms):
        self._finalized.inc()
        if finality_ms is not None:
            self._finality.observe(finality_ms / 1000.0)

    def dropped(self, cause):
        self._rejected.labels(cause).inc()

    def synced(self):
        self._synced.inc()

    def flushed(self, seconds):
        self._flush.observe(seconds)
