"""Waiting for a condition by polling it on a reactor's timers.

The one polling helper of the tests. Every wait runs on the ``clock`` passed
in (an ``IReactorTime``): the real reactor in tests of real connections and
processes, a ``task.Clock`` in unit tests, where the wait advances only as the
test advances the clock.
"""

from twisted.internet import defer, task

DEFAULT_TIMEOUT = 30.0
DEFAULT_INTERVAL = 0.01


@defer.inlineCallbacks
def poll(clock, probe, accept=bool, timeout=DEFAULT_TIMEOUT, interval=DEFAULT_INTERVAL):
    """Call ``probe()`` now and then every ``interval`` seconds of ``clock``.

    ``probe`` returns a value or a Deferred of one. Fires with the first value
    ``accept`` takes, or with the last value once ``timeout`` seconds have
    passed, for the caller to assert on.
    """
    deadline = clock.seconds() + timeout
    while True:
        value = yield probe()
        if accept(value) or clock.seconds() > deadline:
            return value
        yield task.deferLater(clock, interval, lambda: None)


def wait_until(clock, predicate, timeout=DEFAULT_TIMEOUT, interval=DEFAULT_INTERVAL):
    """Fire once ``predicate()`` is true (checked on ``clock``'s timers); fail with
    ``AssertionError`` if it is still false after ``timeout`` seconds."""

    def check(value):
        if not value:
            raise AssertionError(f"condition not met within {timeout}s")

    return poll(clock, predicate, bool, timeout, interval).addCallback(check)
