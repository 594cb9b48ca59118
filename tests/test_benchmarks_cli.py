"""Every benchmark script still imports and parses its options.

The benchmarks run by hand, rarely, and each reads modules the rest of the project changes
(datagen, evaluate, restoration, rowalign): one that no longer imports is found only when
the next session needs its numbers.  ``--help`` imports a script and builds its parser
without running anything; the helper modules that are not scripts (no ``__main__`` guard)
are left out.
"""
from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import REPO

SCRIPTS = sorted(p for p in (REPO / "benchmarks").glob("*.py") if 'if __name__ == "__main__":' in p.read_text())


def test_the_scripts_are_found():
    assert len(SCRIPTS) >= 20 and REPO / "benchmarks" / "column_reach.py" in SCRIPTS


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_benchmark_answers_help(script):
    done = subprocess.run([sys.executable, str(script), "--help"], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("usage: " + script.name), done.stdout[:200]
