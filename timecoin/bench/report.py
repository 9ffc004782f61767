"""The report of ``timecoin bench``: figures, text table, JSON shape (the chart
is :mod:`timecoin.bench.chart`)."""

from timecoin.bench.plan import summarize
from timecoin.bench.run import BLOCK_CPU, CPU, HEIGHT, RSS
from timecoin.cli.registry import format_table


def build_report(run, config):
    """The report of a finished :class:`~timecoin.bench.run.LoadRun` as a JSON object.

    ``config`` (rate, duration, nodes, ...) is copied into it as ``config``.
    """
    w0 = run.samples["window_start"]["at"]
    w1 = run.samples["window_end"]["at"]
    window = max(w1 - w0, 1e-9)
    sent_at, final_at = run.sent_at, run.final_at
    in_window = [i for i, t in enumerate(sent_at) if t is not None and w0 <= t < w1]
    client_ms = [(final_at[i] - sent_at[i]) * 1000.0 for i in in_window
                 if final_at[i] is not None]
    node_ms = [run.node_ms[i] for i in in_window
               if final_at[i] is not None and run.node_ms[i] is not None]
    finals = [t for t in final_at if t is not None]
    sends = [t for t in sent_at if t is not None]
    final_in_window = sum(1 for t in finals if w0 <= t < w1)
    span = (max(finals) - min(sends)) if finals else 0.0
    return {
        "config": dict(config),
        "window_s": round(window, 3),
        "transactions": {
            "planned": len(sent_at),
            "sent": len(sends),
            "sent_in_window": len(in_window),
            "finalized": len(finals),
            "rejected": sum(run.reasons.values()),
            "not_finalized": sum(1 for s in run.status if s == "error"),
        },
        "throughput": {
            "offered_tx_s": round(len(in_window) / window, 1),
            "finalized_in_window_tx_s": round(final_in_window / window, 1),
            "finalized_sustained_tx_s": round(len(finals) / span, 1) if span > 0 else None,
        },
        "finality_ms": {
            "client_observed": summarize(client_ms),
            "node_reported": summarize(node_ms),
        },
        "rejections": dict(run.reasons),
        "errors": dict(run.errors),
        "nodes": _node_usage(run, window),
        "client_cpu_s": round(run.samples["window_end"]["client_cpu"]
                              - run.samples["window_start"]["client_cpu"], 2),
        "samples": {"client_ms": [round(v, 2) for v in client_ms],
                    "node_ms": [round(v, 2) for v in node_ms]},
    }


def _node_usage(run, window):
    before = run.samples["window_start"]["nodes"]
    after = run.samples["window_end"]["nodes"]
    end = run.samples["end"]["nodes"]
    usage = []
    for n, url in enumerate(run.urls):
        b, a, e = before[n], after[n], end[n]
        cpu = a[CPU] - b[CPU] if CPU in a and CPU in b else None
        rss = e.get(RSS, a.get(RSS))
        usage.append({"node": n, "url": url,
                      "cpu_s": round(cpu, 2) if cpu is not None else None,
                      "cpu_percent": round(100.0 * cpu / window, 1) if cpu is not None else None,
                      "peak_rss_mb": round(rss / 2**20, 1) if rss is not None else None,
                      **_block_usage(b, a, cpu)})
    return usage


def _block_usage(before, after, cpu):
    """Blocks committed during the window and what handling the block
    service's messages cost the node's reactor thread: per block, and as a
    share of the node's CPU."""
    blocks = (int(after[HEIGHT] - before[HEIGHT])
              if HEIGHT in after and HEIGHT in before else None)
    block_cpu = (after[BLOCK_CPU] - before[BLOCK_CPU]
                 if BLOCK_CPU in after and BLOCK_CPU in before else None)
    per_block = (round(1000.0 * block_cpu / blocks, 2)
                 if block_cpu is not None and blocks else None)
    share = (round(100.0 * block_cpu / cpu, 1)
             if block_cpu is not None and cpu else None)
    return {"blocks": blocks,
            "block_cpu_s": round(block_cpu, 3) if block_cpu is not None else None,
            "block_cpu_ms_per_block": per_block, "block_cpu_percent_of_node": share}


def _ms(value):
    return "-" if value is None else f"{value:.1f}"


def format_report(report):
    """The report as lines of text."""
    c, t, tp = report["config"], report["transactions"], report["throughput"]
    lines = [f"timecoin bench: {c.get('nodes')} node(s), {c.get('senders')} sender(s), "
             f"offered {c.get('rate')} tx/s for {c.get('duration')} s "
             f"(warm-up {c.get('warmup')} s; measured window {report['window_s']} s)",
             "",
             f"transactions    sent {t['sent']} of {t['planned']}, finalized {t['finalized']}, "
             f"rejected {t['rejected']}, not finalized {t['not_finalized']}",
             f"offered         {tp['offered_tx_s']} tx/s sent during the window",
             f"finalized       {tp['finalized_in_window_tx_s']} tx/s during the window, "
             f"{_ms(tp['finalized_sustained_tx_s'])} tx/s sustained "
             "(all finalized / first send to last finality)",
             "", "finality (ms) of transactions sent during the window:"]
    rows = []
    for name, label in (("client_observed", "client-observed (send to seen final)"),
                        ("node_reported", "node-reported (finality_ms)")):
        s = report["finality_ms"][name]
        rows.append({"measure": label, "count": s["count"], "p50": _ms(s["p50"]),
                     "p95": _ms(s["p95"]), "p99": _ms(s["p99"]), "max": _ms(s["max"])})
    lines += ["  " + x for x in format_table(
        rows, ["measure", "count", "p50", "p95", "p99", "max"], "")]
    lines += ["", "node usage during the window:"]
    lines += ["  " + x for x in format_table(
        report["nodes"], ["node", "url", "cpu_s", "cpu_percent", "peak_rss_mb"], "none")]
    lines += ["", "blocks during the window (CPU of the block service's message handlers):"]
    lines += ["  " + x for x in format_table(
        report["nodes"], ["node", "blocks", "block_cpu_s", "block_cpu_ms_per_block",
                          "block_cpu_percent_of_node"], "none")]
    lines.append(f"  bench client: {report['client_cpu_s']} CPU s")
    for title, key in (("rejections", "rejections"), ("errors", "errors")):
        if report[key]:
            lines += ["", f"{title}:"]
            lines += [f"  {n:>7}  {reason}" for reason, n in
                      sorted(report[key].items(), key=lambda kv: -kv[1])]
    return lines
