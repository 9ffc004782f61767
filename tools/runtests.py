#!/usr/bin/env python3
"""Run the test suite with trial and end with the line ``N passed, N failed``.

Usage: python tools/runtests.py [trial arguments]   (default: -j2 tests)
"""

import os
import re
import subprocess
import sys


def main(argv):
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    args = argv or ["--jobs=2", "tests"]
    cmd = [sys.executable, "-m", "twisted.trial", *args]
    proc = subprocess.Popen(cmd, cwd=here, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    summary = ""
    for line in proc.stdout:
        sys.stdout.write(line)
        if line.startswith(("PASSED", "FAILED")):
            summary = line
    code = proc.wait()
    counts = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", summary)}
    passed = counts.get("successes", 0) + counts.get("expectedFailures", 0)
    failed = counts.get("failures", 0) + counts.get("errors", 0) + counts.get(
        "unexpectedSuccesses", 0)
    if code != 0 and failed == 0:
        failed = 1  # trial itself failed (an import error, a crash)
    skipped = counts.get("skips", 0)
    tail = f", {skipped} skipped" if skipped else ""
    print(f"{passed} passed, {failed} failed{tail}")
    return 0 if code == 0 and failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
