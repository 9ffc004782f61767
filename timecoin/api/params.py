"""Declarative RPC parameters: each method is described once by a :class:`MethodSpec`.

A parameter type checks a decoded JSON value and converts it (a txid's hex to
bytes, an address to its canonical form); its ``description`` completes the
sentence "must be ..." in error messages, ``help`` and doc/rpc.md.
"""

import ipaddress
import math
import re
from dataclasses import dataclass, field

REQUIRED = object()


class ParamError(ValueError):
    """Parameters do not fit a method; the one-line message names the parameter."""


class _Refused(ValueError):
    pass


def _short(value, limit=40):
    text = "null" if value is None else repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


class Text:
    """A string of at most ``max_length`` characters (``min_length`` at least)."""

    def __init__(self, max_length, min_length=0):
        self.max_length = max_length
        self.min_length = min_length
        self.description = (f"a string of {min_length} to {max_length} characters"
                            if min_length else f"a string of at most {max_length} characters")

    def convert(self, value):
        if not isinstance(value, str) or not self.min_length <= len(value) <= self.max_length:
            raise _Refused
        return value


class Hex:
    """Exactly ``size`` bytes as hexadecimal; converted to bytes."""

    def __init__(self, size, what="hexadecimal"):
        self.size = size
        self.description = f"{2 * size} {what} characters"

    def convert(self, value):
        if not isinstance(value, str) or len(value) != 2 * self.size:
            raise _Refused
        try:
            return bytes.fromhex(value)
        except ValueError:
            raise _Refused from None


class Integer:
    """An integer from ``lo`` to ``hi`` (JSON numbers without a fraction)."""

    def __init__(self, lo, hi):
        self.lo, self.hi = lo, hi
        self.description = f"an integer from {lo} to {hi}"

    def convert(self, value):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not (
                self.lo <= value <= self.hi):
            raise _Refused
        return value


class Number:
    """A finite number from ``lo`` to ``hi``; ``lo`` itself excluded if ``above``."""

    def __init__(self, lo, hi, above=False):
        self.lo, self.hi, self.above = lo, hi, above
        low = f"greater than {lo}" if above else f"from {lo}"
        self.description = f"a finite number {low} and at most {hi}"

    def convert(self, value):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _Refused
        if not math.isfinite(value) or value > self.hi or value < self.lo or (
                self.above and value == self.lo):
            raise _Refused
        return value


class Choice:
    """One of a few strings."""

    def __init__(self, *values):
        self.values = values
        self.description = "one of " + ", ".join(f'"{v}"' for v in values)

    def convert(self, value):
        if value not in self.values or not isinstance(value, str):
            raise _Refused
        return value


class Either:
    """The first of several types that accepts the value."""

    def __init__(self, *types):
        self.types = types
        self.description = " or ".join(t.description for t in types)

    def convert(self, value):
        for kind in self.types:
            try:
                return kind.convert(value)
            except _Refused:
                pass
        raise _Refused


_BRACKETED = re.compile(r"\[([^\]]+)\](?::(\d{1,5}))?")


class HostAddress:
    """An IP address, optionally with ``:port`` (IPv6 with a port in brackets);
    converted to the address alone, in canonical form."""

    description = "an IP address, optionally with :port"

    def convert(self, value):
        if not isinstance(value, str) or len(value) > 64:
            raise _Refused
        host, port = value, None
        match = _BRACKETED.fullmatch(value)
        if match:
            host, port = match.groups()
        elif value.count(":") == 1:
            host, port = value.split(":")
        if port is not None and not (port.isdigit() and 0 < int(port) < 65536):
            raise _Refused
        try:
            return str(ipaddress.ip_address(host))
        except ValueError:
            raise _Refused from None


@dataclass(frozen=True)
class Param:
    """One parameter: ``name``, its type, a one-line ``help``, and a ``default``
    (``REQUIRED`` if it must be given; a JSON null then counts as not given)."""

    name: str
    kind: object
    help: str
    default: object = REQUIRED

    @property
    def required(self):
        return self.default is REQUIRED

    def describe(self):
        out = {"name": self.name, "type": self.kind.description, "required": self.required,
               "help": self.help}
        if not self.required:
            out["default"] = self.default
        return out


@dataclass(frozen=True)
class MethodSpec:
    """One RPC method: its parameters, what it returns, and one line of help."""

    name: str
    help: str
    result: str
    params: tuple = field(default_factory=tuple)

    def usage(self):
        """``name required [optional]``, as a one-line signature."""
        return " ".join([self.name] + [p.name if p.required else f"[{p.name}]"
                                       for p in self.params])

    def describe(self):
        return {"method": self.name, "usage": self.usage(), "help": self.help,
                "params": [p.describe() for p in self.params], "result": self.result}

    def bind(self, params):
        """The converted positional arguments for ``params`` (a list, a dict of
        names, or None); :class:`ParamError` naming the first parameter that
        does not fit."""
        if params is None:
            given = {}
        elif isinstance(params, list):
            if len(params) > len(self.params):
                raise ParamError(f"takes at most {len(self.params)} parameters, "
                                 f"{len(params)} given")
            given = {p.name: v for p, v in zip(self.params, params, strict=False)}
        elif isinstance(params, dict):
            known = {p.name for p in self.params}
            unknown = sorted(str(k) for k in params if k not in known)
            if unknown:
                raise ParamError(f"unknown parameter {_short(unknown[0])}")
            given = params
        else:
            raise ParamError("params must be an array or an object")
        args = []
        for p in self.params:
            value = given.get(p.name)
            if value is None:
                if p.required:
                    raise ParamError(f"parameter {p.name} is required")
                args.append(p.default)
                continue
            try:
                args.append(p.kind.convert(value))
            except _Refused:
                raise ParamError(f"parameter {p.name} must be {p.kind.description}, "
                                 f"got {_short(value)}") from None
        return args
