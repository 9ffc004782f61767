"""Draw contrib/grafana-dashboard.json's panels into one PNG, from scraped /metrics.

Grafana is not packaged for Debian nor on PyPI, so this stands in for a
screenshot: it scrapes running nodes' ``/metrics`` (127.0.0.1 only) every
``--interval`` seconds for ``--seconds``, evaluates each panel's expressions
with :mod:`dashboard_query` (a subset of PromQL, see there) at every scrape,
and draws the panels with matplotlib (the ``plot`` extra) in the dashboard's
grid order. It is not Grafana's rendering.

    python tools/render_dashboard.py --url http://127.0.0.1:24101 \\
        --url http://127.0.0.1:24103 --seconds 90 --out doc/dashboard.png

``--save FILE`` keeps the scrapes (JSON) and ``--scrapes FILE`` draws from
kept ones instead of scraping.
"""

import argparse
import json
import math
import os
import sys
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from dashboard_query import Series, evaluate, legend, parse  # noqa: E402

#: Series drawn per panel at most (the largest ones).
MAX_LINES = 16
DASHBOARD = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                         "contrib", "grafana-dashboard.json")


def scrape(urls, seconds, interval):
    """``[(t, instance, text)]``: each URL's /metrics every ``interval`` seconds."""
    for url in urls:
        if urllib.parse.urlsplit(url).hostname != "127.0.0.1":
            raise SystemExit(f"render_dashboard: {url}: only 127.0.0.1 is scraped")
    kept, started = [], time.monotonic()
    while True:
        now = time.monotonic() - started
        for n, url in enumerate(urls):
            try:
                with urllib.request.urlopen(url.rstrip("/") + "/metrics", timeout=10) as answer:
                    kept.append((now, f"node{n}", answer.read().decode()))
            except OSError as e:  # a node not up yet, or gone: a gap in its lines
                print(f"render_dashboard: {url}: {e}", file=sys.stderr)
        if now >= seconds:
            return kept
        time.sleep(max(0.0, interval - (time.monotonic() - started - now)))


def panel_lines(panel, series, times):
    """``[(legend, [t], [value])]`` of every target of ``panel`` over ``times``."""
    lines = {}  # (target, labels) -> (legend, [t], [value])
    for n, target in enumerate(panel.get("targets", ())):
        tree = parse(target["expr"])
        for t in times:
            result = evaluate(tree, series, t)
            if isinstance(result, float):
                result = {(): result}
            for labels, value in result.items():
                if value is None or math.isnan(value):
                    continue
                name = legend(target.get("legendFormat", ""), labels) or target["expr"]
                _, xs, ys = lines.setdefault((n, labels), (name, [], []))
                xs.append(t)
                ys.append(value)
    return sorted(lines.values(), key=lambda line: line[0])


def render(dashboard, series, times, path, columns=2):
    """Write the panels of ``dashboard`` (a dict) to ``path`` (a PNG)."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    panels = sorted(dashboard["panels"], key=lambda p: (p["gridPos"]["y"], p["gridPos"]["x"]))
    rows = math.ceil(len(panels) / columns)
    figure = Figure(figsize=(7.5 * columns, 2.6 * rows), layout="constrained")
    figure.suptitle(f"{dashboard['title']}: the panels of contrib/grafana-dashboard.json "
                    "drawn from scraped /metrics (not Grafana)", fontsize=12)
    for n, panel in enumerate(panels):
        axes = figure.add_subplot(rows, columns, n + 1)
        lines = panel_lines(panel, series, times)
        # The MAX_LINES largest, in tab20's colours (the default cycle repeats after 10).
        shown = sorted(lines, key=lambda line: -max(line[2]))[:MAX_LINES]
        colours = matplotlib.colormaps["tab20"].colors
        for k, (name, xs, ys) in enumerate(sorted(shown)):
            axes.plot(xs, ys, linewidth=1.4, label=name, color=colours[k % len(colours)])
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "")
        title = panel["title"] + (f"  [{unit}]" if unit not in ("", "none") else "")
        if len(lines) > len(shown):
            title += f"  (largest {len(shown)} of {len(lines)} series)"
        axes.set_title(title, fontsize=9, loc="left")
        axes.tick_params(labelsize=7)
        axes.grid(True, color="#dddddd", linewidth=0.6)
        axes.set_xlabel("seconds", fontsize=7)
        if lines:
            axes.legend(fontsize=6, loc="upper left", ncols=2 if len(lines) > 4 else 1,
                        frameon=False)
        else:
            axes.text(0.5, 0.5, "no data", ha="center", va="center", transform=axes.transAxes,
                      color="#888888")
    figure.savefig(path, dpi=90)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", action="append", default=[],
                        help="a node's API URL (repeatable; 127.0.0.1 only)")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to scrape")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between scrapes")
    parser.add_argument("--dashboard", default=DASHBOARD)
    parser.add_argument("--save", help="write the scrapes to this JSON file")
    parser.add_argument("--scrapes", help="draw from scrapes saved with --save")
    parser.add_argument("--out", required=True, help="PNG to write")
    args = parser.parse_args(argv)
    if args.scrapes:
        with open(args.scrapes) as f:
            kept = [tuple(item) for item in json.load(f)]
    elif args.url:
        kept = scrape(args.url, args.seconds, args.interval)
    else:
        parser.error("give --url (to scrape) or --scrapes")
    if args.save:
        with open(args.save, "w") as f:
            json.dump(kept, f)
    series = Series()
    for t, instance, text in kept:
        series.add_scrape(t, instance, text)
    with open(args.dashboard) as f:
        dashboard = json.load(f)
    times = sorted({t for t, _, _ in kept})
    render(dashboard, series, times, args.out)
    print(f"{args.out}: {len(dashboard['panels'])} panels from {len(kept)} scrapes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
