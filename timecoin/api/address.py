"""Where the API is: an ``--rpc`` URL checked, and the HTTP agent that reaches it.

Accepted forms are ``http://HOST:PORT`` and ``https://HOST:PORT`` (optionally
ending in ``/rpc``) and ``unix:PATH``, a UNIX socket the daemon serves with
``--api unix:PATH``. Anything else is an :class:`ApiUrlError` whose message is
one line saying what is wrong and what to write instead.
"""

import os
import stat
from dataclasses import dataclass
from urllib.parse import urlsplit

from twisted.internet.endpoints import UNIXClientEndpoint
from twisted.web.client import Agent
from twisted.web.iweb import IAgentEndpointFactory
from zope.interface import implementer

SCHEMES = ("http", "https")


class ApiUrlError(ValueError):
    """An API URL that cannot be used; the message is one line."""


@dataclass(frozen=True)
class ApiAddress:
    """A checked API address: ``url`` to request (ending in ``/rpc``), and
    ``socket_path`` when the API is a UNIX socket (``url`` is then
    ``http://localhost/rpc``, sent over the socket)."""

    url: str
    socket_path: str | None = None

    @property
    def shown(self):
        """The address as a person wrote it."""
        return f"unix:{self.socket_path}" if self.socket_path else self.url

    def agent(self, reactor, pool):
        """A ``twisted.web`` agent that reaches this address."""
        if self.socket_path is None:
            return Agent(reactor, pool=pool)
        return Agent.usingEndpointFactory(
            reactor, UnixSocketEndpoints(reactor, self.socket_path), pool=pool)


@implementer(IAgentEndpointFactory)
class UnixSocketEndpoints:
    """Endpoints for an agent: every URI is reached over the UNIX socket ``path``."""

    def __init__(self, reactor, path):
        self._reactor = reactor
        self._path = path

    def endpointForURI(self, uri):  # noqa: N802 - the interface's name
        return UNIXClientEndpoint(self._reactor, self._path)


def _rpc_path(url):
    url = url.rstrip("/")
    return url if url.endswith("/rpc") else url + "/rpc"


def parse_api_url(text):
    """The :class:`ApiAddress` of ``text``; :class:`ApiUrlError` if it is malformed."""
    if not isinstance(text, str) or not text.strip():
        raise ApiUrlError("empty API URL: give http://HOST:PORT or unix:PATH")
    text = text.strip()
    if text.startswith("unix:"):
        return ApiAddress("http://localhost/rpc", _socket_path(text[len("unix:"):]))
    if "://" not in text:
        raise ApiUrlError(f"API URL {text!r} has no scheme: write http://{text}")
    parts = urlsplit(text)
    if parts.scheme.lower() not in SCHEMES:
        raise ApiUrlError(f"API URL {text!r}: the scheme must be http, https or unix")
    if not parts.hostname:
        raise ApiUrlError(f"API URL {text!r} has no host")
    try:
        parts.port  # noqa: B018 - parsing it checks it
    except ValueError:
        raise ApiUrlError(f"API URL {text!r} has a port that is not a number "
                          "from 0 to 65535") from None
    if parts.path.rstrip("/") not in ("", "/rpc") or parts.query or parts.fragment:
        raise ApiUrlError(f"API URL {text!r}: give the node's base URL "
                          f"({parts.scheme}://{parts.netloc})")
    return ApiAddress(_rpc_path(text))


def _socket_path(path):
    if path.startswith("//"):
        path = path[2:]  # unix://PATH
    if path.startswith("path="):
        path = path[len("path="):]  # the endpoint string's own form
    if not path:
        raise ApiUrlError("unix: needs the socket's path (unix:/path/to/api.sock)")
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise ApiUrlError(f"no API socket at {path} (is the node running with "
                          f"--api unix:{path}?)") from None
    except OSError as e:
        raise ApiUrlError(f"cannot use the API socket {path}: {e.strerror}") from None
    if not stat.S_ISSOCK(mode):
        raise ApiUrlError(f"{path} is not a socket (the node serves one with "
                          f"--api unix:{path})")
    return path
