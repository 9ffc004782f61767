"""Running the real daemon and CLI as child processes, driven by their output."""

import atexit
import os
import re
import signal
import sys

from twisted.internet import defer, protocol

TWISTD = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]
CLI = [sys.executable, "-c", "from timecoin.cli import main; main()"]
API_LINE = re.compile(rb"API listening on ([\d.]+):(\d+)")


def child_env():
    env = dict(os.environ)
    env.pop("PYTHONWARNINGS", None)
    return env


class DaemonProcess(protocol.ProcessProtocol):
    """A ``twistd -n timecoin`` child; ``api_url`` fires once its API listens."""

    def __init__(self):
        self.output = b""
        self.api_url = defer.Deferred()
        self.ended = defer.Deferred()
        self.exit_code = None
        self.pid = None
        self._expecting = []  # (compiled pattern, Deferred)

    def expect(self, pattern):
        """Fire with the match once ``pattern`` (bytes regex) appears in the output."""
        d = defer.Deferred()
        self._expecting.append((re.compile(pattern), d))
        self._check_expected()
        return d

    def _check_expected(self):
        for item in list(self._expecting):
            match = item[0].search(self.output)
            if match:
                self._expecting.remove(item)
                item[1].callback(match)

    def outReceived(self, data):
        self.output += data
        self._check_expected()
        if not self.api_url.called:
            match = API_LINE.search(self.output)
            if match:
                host, port = match.group(1).decode(), match.group(2).decode()
                self.api_url.callback(f"http://{host}:{port}")

    errReceived = outReceived

    def processEnded(self, reason):
        forget_child(self.pid)
        self.exit_code = exit_code(reason)
        if not self.api_url.called:
            self.api_url.errback(RuntimeError(
                "daemon exited before listening:\n" + self.output.decode(errors="replace")))
        for _, d in self._expecting:
            d.errback(RuntimeError("daemon exited:\n" + self.output.decode(errors="replace")))
        self._expecting = []
        self.ended.callback(self.exit_code)

    def kill(self, sig=signal.SIGKILL):
        if self.exit_code is None:
            self.transport.signalProcess(sig)
        return self.ended


TWIST = [sys.executable, "-c", "from twisted.application.twist._twist import Twist; "
          "Twist.main()"]


def with_open_file_limit(limit, argv):
    """``argv`` run under ``ulimit -n limit`` (through ``/bin/sh``), or as is
    when ``limit`` is None."""
    if limit is None:
        return list(argv)
    return ["/bin/sh", "-c", f'ulimit -n {int(limit)} && exec "$@"', "sh", *argv]


def start_daemon(reactor, datadir, *extra, runner="twistd", open_file_limit=None):
    """``twistd -n timecoin`` (or ``twist timecoin``) on a devnet datadir,
    under ``ulimit -n open_file_limit`` if given."""
    proc = DaemonProcess()
    head = (TWISTD + ["-n", "--pidfile="] if runner == "twistd"
            else TWIST + ["--log-format=text"])
    args = head + ["timecoin", "--network", "devnet",
                     "--datadir", datadir, "--api", "tcp:0:interface=127.0.0.1",
                     "--p2p", "tcp:0:interface=127.0.0.1", *extra]
    return spawn_child(reactor, proc, with_open_file_limit(open_file_limit, args))


def _stat(pid):
    """``(state, parent pid)`` of a process (Linux /proc), or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return fields[0], int(fields[1])


def worker_pids(pid):
    """The running signature-worker processes whose parent is ``pid``."""
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        stat = _stat(entry)
        if stat is None or stat[1] != pid or stat[0] == "Z":
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if b"timecoin.node.verify_worker" in f.read():
                    found.append(int(entry))
        except OSError:
            continue
    return found


def is_running(pid):
    """True while ``pid`` exists and is not a zombie."""
    stat = _stat(pid)
    return stat is not None and stat[0] != "Z"


class _Collector(protocol.ProcessProtocol):
    """Collects a child's output; fires ``(stdout, stderr, exit code)`` at its end."""

    def __init__(self):
        self.out, self.err = [], []
        self.done = defer.Deferred()
        self.pid = None

    def outReceived(self, data):
        self.out.append(data)

    def errReceived(self, data):
        self.err.append(data)

    def processEnded(self, reason):
        forget_child(self.pid)
        self.done.callback((b"".join(self.out), b"".join(self.err), exit_code(reason)))


#: Children still running; killed when the test process exits, so that a test
#: that times out leaves none behind.
_LIVE = set()


@atexit.register
def _kill_leftovers():
    for pid in list(_LIVE):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def forget_child(pid):
    """``pid`` has ended: no need to kill it when the test process exits."""
    _LIVE.discard(pid)


def exit_code(reason):
    """The exit status, or minus the signal that ended the process."""
    code = reason.value.exitCode
    return code if code is not None else -(reason.value.signal or 0)


def spawn_child(reactor, proto, argv):
    """Start ``argv`` for ``proto`` (which has a ``pid``), remembered until it ends.

    A child still running when the test process exits is killed then.
    """
    reactor.spawnProcess(proto, argv[0], argv, env=child_env())
    proto.pid = proto.transport.pid  # the transport forgets it once reaped
    _LIVE.add(proto.pid)
    return proto


def _run(reactor, argv):
    return spawn_child(reactor, _Collector(), argv).done


def run_twistd(reactor, *args, open_file_limit=None):
    """Run twistd to completion (under ``ulimit -n open_file_limit`` if given):
    fires with ``(stdout, stderr, exit code)``."""
    return _run(reactor, with_open_file_limit(
        open_file_limit, TWISTD + ["-n", "--pidfile=", "timecoin", *args]))


def run_cli(reactor, *args):
    """Run the ``timecoin`` command: fires with ``(stdout, stderr, exit code)``."""
    return _run(reactor, CLI + list(args))
