"""contrib/timecoin.service: ``systemd-analyze verify`` (when available) and a
command line the daemon accepts."""

import os
import shlex
import shutil
import subprocess
import sys
import tempfile

from twisted.trial import unittest

from timecoin.tap import Options

UNIT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                    "contrib", "timecoin.service")


def exec_start():
    with open(UNIT) as f:
        [line] = [line for line in f if line.startswith("ExecStart=")]
    return shlex.split(line[len("ExecStart="):])


class SystemdUnitTests(unittest.TestCase):
    def verify(self, text):
        """``(exit status, lines naming the unit)`` of ``systemd-analyze verify``
        on a unit file holding ``text``, twistd pointed at this install's."""
        analyze = shutil.which("systemd-analyze")
        if analyze is None:
            raise unittest.SkipTest("systemd-analyze is not installed")
        twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
        directory = tempfile.mkdtemp(prefix="timecoin-unit-")
        self.addCleanup(shutil.rmtree, directory)
        path = os.path.join(directory, "timecoin.service")
        with open(path, "w") as f:
            f.write(text.replace("/opt/timecoin/bin/twistd", twistd))
        result = subprocess.run([analyze, "verify", path], capture_output=True, text=True,
                                timeout=60)
        problems = [line for line in (result.stdout + result.stderr).splitlines()
                    if "timecoin.service" in line]
        return result.returncode, problems

    def test_systemd_analyze_verify(self):
        with open(UNIT) as f:
            text = f.read()
        self.assertEqual(self.verify(text), (0, []))

    def test_systemd_analyze_verify_reports_a_broken_unit(self):
        """The check above is a real one: the same unit with a misspelt value
        and an unknown key fails it."""
        with open(UNIT) as f:
            text = f.read()
        broken = text.replace("Restart=on-failure", "Restart=sometimes")
        broken = broken.replace("NoNewPrivileges=yes", "NoNewPrivilege=yes")
        self.assertNotEqual(broken, text)
        _, problems = self.verify(broken)
        self.assertEqual(len(problems), 2, problems)
        self.assertIn("sometimes", problems[0])
        self.assertIn("NoNewPrivilege", problems[1])

    def test_exec_start_is_a_daemon_command_line(self):
        argv = exec_start()
        self.assertTrue(argv[0].endswith("/twistd"))
        self.assertIn("--nodaemon", argv)
        self.assertIn("--pidfile=", argv)
        options = Options()
        options.parseOptions(argv[argv.index("timecoin") + 1:])
        self.assertEqual(options["network"], "testnet")
        self.assertEqual(options["datadir"], "/var/lib/timecoin")
