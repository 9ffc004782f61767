"""The part of PromQL that contrib/grafana-dashboard.json uses, over scrapes kept in memory.

Not Prometheus: enough of its query language to draw the dashboard's panels
from /metrics texts scraped by :mod:`render_dashboard`, without a Prometheus
server or Grafana. Supported: selectors with ``=`` label matchers,
``rate(selector[range])``, ``sum [by (labels)] (expr)``,
``histogram_quantile(q, expr)``, numbers, and ``*`` and ``/`` between a
number and a vector or between two vectors with the same labels.

Two simplifications against Prometheus, both stated in doc/operations.md:
``rate`` is the increase between the first and the last sample in the range
divided by the time between them (no extrapolation to the range's ends;
counter resets are handled), and a range longer than the scrapes covers
whatever samples there are.
"""

import math
import re
from collections import defaultdict

_TOKEN = re.compile(r"\s*(?:(?P<number>\d+(?:\.\d+)?)(?P<unit>[smh])?"
                    r"|(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)"
                    r'|(?P<string>"[^"]*")|(?P<punct>[(){}\[\],*/=]))')
_UNITS = {"s": 1, "m": 60, "h": 3600}


class QueryError(ValueError):
    """An expression outside the supported subset."""


class Series:
    """Samples by series: ``{(name, labels): [(t, value)]}``, labels a sorted tuple of pairs."""

    def __init__(self):
        self.samples = defaultdict(list)

    def add_scrape(self, t, instance, metrics_text):
        """Add every sample of one /metrics text, read at time ``t``, labelled
        ``instance``."""
        from prometheus_client.parser import text_string_to_metric_families

        for family in text_string_to_metric_families(metrics_text):
            for sample in family.samples:
                labels = dict(sample.labels, instance=instance)
                self.samples[sample.name, tuple(sorted(labels.items()))].append(
                    (t, float(sample.value)))

    def select(self, name, matchers):
        for (series_name, labels), points in self.samples.items():
            if series_name == name and all(dict(labels).get(k, "") == v
                                           for k, v in matchers.items()):
                yield labels, points


def _tokens(text):
    position, found = 0, []
    text = text.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise QueryError(f"cannot read {text[position:position + 20]!r}")
        position = match.end()
        found.append(match)
    return found


class _Parser:
    """Recursive descent over the tokens; builds nested tuples."""

    def __init__(self, text):
        self.tokens = _tokens(text)
        self.at = 0

    def peek(self):
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self, punct=None):
        token = self.peek()
        if token is None:
            raise QueryError("unexpected end")
        if punct is not None and token.group("punct") != punct:
            raise QueryError(f"expected {punct!r}, found {token.group(0).strip()!r}")
        self.at += 1
        return token

    def parse(self):
        tree = self.expression()
        if self.peek() is not None:
            raise QueryError(f"unexpected {self.peek().group(0).strip()!r}")
        return tree

    def expression(self):
        tree = self.term()
        while self.peek() is not None and self.peek().group("punct") in ("*", "/"):
            operator = self.take().group("punct")
            tree = ("binary", operator, tree, self.term())
        return tree

    def term(self):
        token = self.take()
        if token.group("number") is not None and token.group("unit") is None:
            return ("number", float(token.group("number")))
        if token.group("punct") == "(":
            tree = self.expression()
            self.take(")")
            return tree
        name = token.group("name")
        if name is None:
            raise QueryError(f"unexpected {token.group(0).strip()!r}")
        if name == "sum":
            by = ()
            if self.peek() is not None and self.peek().group("name") == "by":
                self.take()
                by = self.label_list()
            self.take("(")
            tree = self.expression()
            self.take(")")
            return ("sum", by, tree)
        if name == "rate":
            self.take("(")
            selector = self.selector(self.take().group("name"))
            self.take("[")
            duration = self.take()
            if duration.group("unit") is None:
                raise QueryError("a range needs a unit (s, m, h)")
            self.take("]")
            self.take(")")
            seconds = float(duration.group("number")) * _UNITS[duration.group("unit")]
            return ("rate", selector, seconds)
        if name == "histogram_quantile":
            self.take("(")
            quantile = float(self.take().group("number"))
            self.take(",")
            tree = self.expression()
            self.take(")")
            return ("quantile", quantile, tree)
        return self.selector(name)

    def label_list(self):
        self.take("(")
        names = [self.take().group("name")]
        while self.peek().group("punct") == ",":
            self.take()
            names.append(self.take().group("name"))
        self.take(")")
        return tuple(names)

    def selector(self, name):
        if name is None:
            raise QueryError("expected a metric name")
        matchers = {}
        if self.peek() is not None and self.peek().group("punct") == "{":
            self.take()
            while True:
                key = self.take().group("name")
                self.take("=")
                matchers[key] = self.take().group("string")[1:-1]
                if self.peek().group("punct") == "}":
                    break
                self.take(",")
            self.take("}")
        return ("selector", name, matchers)


def parse(text):
    """The tree of ``text``; :class:`QueryError` outside the subset."""
    return _Parser(text).parse()


def _rate(points, t, seconds):
    window = [(ts, v) for ts, v in points if t - seconds <= ts <= t]
    if len(window) < 2 or window[-1][0] <= window[0][0]:
        return None
    increase = 0.0
    for (_, before), (_, after) in zip(window, window[1:], strict=False):
        increase += after - before if after >= before else after  # a reset starts at 0
    return increase / (window[-1][0] - window[0][0])


def _quantile(q, buckets):
    """Prometheus's interpolation over ``[(le, cumulative count)]``."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][0] != math.inf:
        return None
    total = buckets[-1][1]
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == math.inf:
                return lower
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower


def evaluate(tree, series, t):
    """``{labels: value}`` of ``tree`` at time ``t`` (a number for a number)."""
    kind = tree[0]
    if kind == "number":
        return tree[1]
    if kind == "selector":
        _, name, matchers = tree
        found = {}
        for labels, points in series.select(name, matchers):
            before = [v for ts, v in points if ts <= t]
            if before:
                found[labels] = before[-1]
        return found
    if kind == "rate":
        _, (_, name, matchers), seconds = tree
        found = {}
        for labels, points in series.select(name, matchers):
            value = _rate(points, t, seconds)
            if value is not None:
                found[labels] = value
        return found
    if kind == "sum":
        _, by, inner = tree
        sums = defaultdict(float)
        for labels, value in evaluate(inner, series, t).items():
            sums[tuple((k, v) for k, v in labels if k in by)] += value
        return dict(sums)
    if kind == "quantile":
        _, q, inner = tree
        groups = defaultdict(list)
        for labels, value in evaluate(inner, series, t).items():
            le = dict(labels).get("le")
            if le is None:
                continue
            rest = tuple((k, v) for k, v in labels if k != "le")
            groups[rest].append((float(le), value))
        found = {}
        for labels, buckets in groups.items():
            value = _quantile(q, buckets)
            if value is not None:
                found[labels] = value
        return found
    if kind == "binary":
        _, operator, left, right = tree
        return _binary(operator, evaluate(left, series, t), evaluate(right, series, t))
    raise QueryError(f"unknown node {kind}")


def _apply(operator, a, b):
    if operator == "*":
        return a * b
    return a / b if b else math.nan


def _binary(operator, left, right):
    if isinstance(left, float) and isinstance(right, float):
        return _apply(operator, left, right)
    if isinstance(left, float):
        return {labels: _apply(operator, left, v) for labels, v in right.items()}
    if isinstance(right, float):
        return {labels: _apply(operator, v, right) for labels, v in left.items()}
    return {labels: _apply(operator, v, right[labels]) for labels, v in left.items()
            if labels in right}


def legend(template, labels):
    """A Grafana ``legendFormat``: ``{{label}}`` replaced by the series' value."""
    values = dict(labels)
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: values.get(m.group(1), ""), template)
