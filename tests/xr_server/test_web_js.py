"""The pages' pure JS modules under node's built-in test runner (tests/js/*.test.mjs), so the
pytest run covers them too."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_the_js_unit_tests_pass():
    node = shutil.which("node")
    if node is None:
        pytest.fail("node missing: the npm set-up (`make`) needs it")
    files = sorted(str(p) for p in (REPO / "tests" / "js").glob("*.test.mjs"))
    assert files, "no JS tests found in tests/js"
    result = subprocess.run([node, "--test", *files], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "# fail 0" in result.stdout and "# pass 0" not in result.stdout, result.stdout[-2000:]
