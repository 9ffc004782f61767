"""Prometheus metrics of one node, in a registry of its own.

Counters and histograms are updated on events; gauges of current sizes are
read from the node when scraped, so keeping them costs nothing in between.
Every name starts with ``timecoin_``.
"""

from collections import deque

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from zope.interface import implementer

from timecoin.interfaces import INodeMetrics
from timecoin.storage.timings import STORAGE_BUCKETS

#: Finality times kept for the status page's chart.
RECENT_FINALITY = 100
FINALITY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Upper bounds of the finality statistics' histograms (votes per poll: k is 20 by default).
COUNT_BUCKETS = (0, 1, 2, 3, 5, 8, 10, 12, 15, 18, 20, 25, 30, 40)


class _NodeGauges:
    """Reads the node's current sizes at scrape time (``INodeComponents`` and
    ``INodeQueries``)."""

    def __init__(self, node, queries):
        self._node = node
        self._queries = queries

    def collect(self):
        node, queries = self._node, self._queries
        values = {
            "timecoin_mempool_size": ("Pending transactions", node.mempool.size),
            "timecoin_mempool_bytes": ("Bytes of pending transactions", node.mempool.bytes),
            "timecoin_utxo_outputs": ("Finalized unspent outputs", node.state.count),
            "timecoin_utxo_cached": ("Outputs held in memory", len(node.state)),
            "timecoin_peers": ("Connected peers", queries.peer_count()),
            "timecoin_masternodes_active": ("Active masternodes", queries.masternodes_active()),
            "timecoin_journal_backlog": ("Finality records awaiting commit",
                                         node.journal.backlog),
            "timecoin_finality_in_flight": ("Transactions being decided",
                                            node.finality.in_flight()),
            "timecoin_block_height": ("Best block height", node.chain.height()),
            "timecoin_signatures_pending": ("Transactions awaiting signature verification",
                                            node.verifier.pending()),
        }
        memory = _process_memory_bytes()
        if "VmHWM" in memory:
            values["timecoin_process_peak_rss_bytes"] = ("Peak resident memory", memory["VmHWM"])
        if "VmData" in memory:
            values["timecoin_process_heap_bytes"] = (
                "Heap and other private data mappings of the process (VmData)", memory["VmData"])
        for name, (doc, value) in values.items():
            yield GaugeMetricFamily(name, doc, value=value)
        yield from _cache_families(node.state)
        yield from _storage_families(node.storage.timing_snapshot())
        yield CounterMetricFamily("timecoin_signature_worker_restarts",
                                  "Signature workers that ended unasked",
                                  value=node.verifier.restarts)
        yield CounterMetricFamily("timecoin_safety_incidents",
                                  "Certified blocks found conflicting with a transaction "
                                  "finalized here", value=node.safety_incidents)
        statistics = list(node.finality.statistics())
        if node.block_service is not None:
            statistics += node.block_service.statistics()
        for name, kind, doc, value in statistics:
            if kind == "histogram":
                yield _histogram(name, doc, value)
                continue
            family = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
            yield family(name, doc, value=value)
        if node.peer_network is not None:
            yield from _labelled(node.peer_network.statistics())


def _histogram(name, doc, observed):
    """A histogram family of ``{value: times}`` over :data:`COUNT_BUCKETS`, or
    :data:`FINALITY_BUCKETS` for a name ending in ``_seconds``."""
    bounds = FINALITY_BUCKETS if name.endswith("_seconds") else COUNT_BUCKETS
    buckets = [(str(bound), sum(n for v, n in observed.items() if v <= bound))
               for bound in bounds]
    total = sum(observed.values())
    buckets.append(("+Inf", total))
    return HistogramMetricFamily(name, doc, buckets=buckets,
                                 sum_value=sum(v * n for v, n in observed.items()))


def _cache_families(state):
    """The UTXO cache's lookups (by result) and evictions, from an ``IUtxoState``."""
    lookups = CounterMetricFamily("timecoin_utxo_cache_lookups",
                                  "Input outpoints looked up in the in-memory UTXO cache, "
                                  "by result (a miss is read from storage)", labels=["result"])
    lookups.add_metric(["hit"], state.cache_hits)
    lookups.add_metric(["miss"], state.cache_misses)
    yield lookups
    yield CounterMetricFamily("timecoin_utxo_cache_evictions",
                              "Clean outputs evicted to keep the UTXO cache bound",
                              value=state.cache_evictions)


def _storage_buckets(snapshot):
    """``[(le, cumulative count)]`` of a ``HistogramSnapshot`` over :data:`STORAGE_BUCKETS`."""
    bounds = [str(bound) for bound in STORAGE_BUCKETS] + ["+Inf"]
    return list(zip(bounds, snapshot.buckets, strict=True))


def _storage_families(timings):
    """The writer thread's histograms and WAL checkpoint totals (a ``TimingSnapshot``)."""
    operations = HistogramMetricFamily(
        "timecoin_storage_operation_seconds",
        "Duration of storage operations on the writer thread, by operation",
        labels=["operation"])
    for name, histogram in sorted(timings.operations.items()):
        operations.add_metric([name], _storage_buckets(histogram), histogram.sum)
    yield operations
    checkpoint = timings.checkpoint_seconds
    yield HistogramMetricFamily("timecoin_storage_wal_checkpoint_seconds",
                                "Duration of WAL checkpoints",
                                buckets=_storage_buckets(checkpoint), sum_value=checkpoint.sum)
    yield CounterMetricFamily("timecoin_storage_wal_checkpoints", "WAL checkpoints run",
                              value=timings.checkpoints)
    yield CounterMetricFamily("timecoin_storage_wal_checkpoint_pages",
                              "Pages WAL checkpoints copied into the database file",
                              value=timings.checkpoint_pages)
    yield GaugeMetricFamily("timecoin_storage_wal_pages",
                            "Pages in the WAL at the last checkpoint", value=timings.wal_pages)


def _labelled(statistics):
    """Metric families of ``(name, kind, doc, [(labels, value)])`` tuples."""
    for name, kind, doc, samples in statistics:
        if kind == "counter":
            name = name.removesuffix("_total")
        family_type = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
        labels = sorted({key for sample_labels, _ in samples for key in sample_labels})
        family = family_type(name, doc, labels=labels)
        for sample_labels, value in samples:
            family.add_metric([sample_labels.get(key, "") for key in labels], value)
        yield family


def _process_memory_bytes():
    """``{field: bytes}`` of /proc/self/status's memory fields (empty off Linux)."""
    found = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                field, _, rest = line.partition(":")
                if field in ("VmHWM", "VmData"):
                    found[field] = int(rest.split()[0]) * 1024
    except OSError:
        pass
    return found


@implementer(INodeMetrics)
class NodeMetrics:
    """The node's metrics and the registry /metrics serves.

    ``node`` provides ``INodeComponents``, ``queries`` ``INodeQueries``: the
    gauges read them when scraped.
    """

    def __init__(self, node, queries):
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
        self._recent_finality_ms = deque(maxlen=RECENT_FINALITY)
        r.register(_NodeGauges(node, queries))
        ProcessCollector(namespace="timecoin", registry=r)

    def accepted(self):
        self._accepted.inc()

    def rejected_on_entry(self, code):
        self._received.labels(code).inc()

    def finalized(self, finality_ms):
        self._finalized.inc()
        if finality_ms is not None:
            self._finality.observe(finality_ms / 1000.0)
            self._recent_finality_ms.append(finality_ms)

    def recent_finality_ms(self):
        return list(self._recent_finality_ms)

    def dropped(self, cause):
        self._rejected.labels(cause).inc()

    def synced(self):
        self._synced.inc()

    def flushed(self, seconds):
        self._flush.observe(seconds)
