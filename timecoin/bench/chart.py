"""The bench's chart (``timecoin bench --png``): the cumulative distribution of
finality times, client-observed and node-reported side by side, with p50, p95
and p99 marked. Drawn for print: black lines on white, marks told apart by
their dash style and labelled with their value, a logarithmic time axis when
the times span more than two decades. Needs matplotlib (the ``plot`` extra).
"""

PERCENTILES = (("p50", (0, (1, 1.5))), ("p95", (0, (4, 2))), ("p99", (0, (7, 2, 1, 2))))
PANELS = (("client_ms", "client_observed", "client-observed"),
          ("node_ms", "node_reported", "node-reported"))


def cdf_points(values):
    """``(xs, ys)`` of the empirical CDF of ``values``: ys rise to 1.0."""
    ordered = sorted(values)
    n = len(ordered)
    return ordered, [(i + 1) / n for i in range(n)]


def draw_cdf(report):
    """The chart of ``report`` as a matplotlib ``Figure`` (not shown, not saved);
    ImportError without matplotlib."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4.2), dpi=150)
    axes = fig.subplots(1, 2, sharex=True, sharey=True)  # one scale: compare at a glance
    samples = report["samples"]
    every = [v for key, _, _ in PANELS for v in samples[key] if v > 0]
    log_scale = bool(every) and max(every) / min(every) > 100
    for ax, (key, figures, title) in zip(axes, PANELS, strict=True):
        values = samples[key]
        summary = report["finality_ms"][figures]
        ax.set_title(f"{title} ({len(values)} transactions)", fontsize=11)
        ax.set_xlabel("finality time (ms)", fontsize=10)
        ax.grid(True, color="0.85", linewidth=0.6)
        ax.set_ylim(0, 1.02)
        if log_scale:
            ax.set_xscale("log")
        if not values:
            ax.text(0.5, 0.5, "no samples", ha="center", va="center", transform=ax.transAxes)
            continue
        xs, ys = cdf_points(values)
        ax.step(xs, ys, where="post", color="black", linewidth=1.8)
        for rank, (name, dashes) in enumerate(PERCENTILES):
            at = summary[name]
            if at is None:
                continue
            ax.axvline(at, color="0.25", linewidth=1.2, linestyle=dashes)
            ax.annotate(f"{name} {at:g} ms", xy=(at, 0.08 + 0.1 * rank), xytext=(4, 0),
                        textcoords="offset points", fontsize=9, color="black",
                        backgroundcolor="white")
    axes[0].set_ylabel("fraction of transactions finalized", fontsize=10)
    c = report["config"]
    fig.suptitle(f"finality time CDF: {c.get('nodes')} nodes, {c.get('rate')} tx/s offered",
                 fontsize=12)
    fig.tight_layout()
    return fig


def write_png(report, path):
    """Write the chart of ``report`` to ``path``; ``False`` if matplotlib is missing."""
    try:
        fig = draw_cdf(report)
    except ImportError:
        return False
    fig.savefig(path)
    return True
