"""The documentation site builds strictly: a broken link, a page left out of the navigation or
a docstring that fails to render fails the test suite (and so CI)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_docs_site_builds_strictly(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert (tmp_path / "index.html").is_file()
    assert (tmp_path / "reliability" / "index.html").is_file()
    # The API reference rendered the model's docstring.
    api = (tmp_path / "api" / "model" / "index.html").read_text(encoding="utf-8")
    assert "MultiTaskModule" in api
