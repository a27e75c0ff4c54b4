"""The coverage-guided fuzzer (atheris) over the metadata parser and readers, with a bounded
budget (GIT_THETA_ATHERIS_RUNS, default 8000 inputs): it must finish without a finding."""

import os
import subprocess
import sys

import pytest

atheris = pytest.importorskip("atheris")  # in requirements-dev; optional elsewhere


def test_atheris_finds_nothing(tmp_path):
    runs = os.environ.get("GIT_THETA_ATHERIS_RUNS", "8000")
    harness = os.path.join(os.path.dirname(__file__), "atheris_readers.py")
    proc = subprocess.run(
        # -rss_limit_mb: with PyPI's CUDA torch imported the harness starts at ~2.2 GB, over
        # libFuzzer's default 2 GB; a single allocation past it is still a finding
        [
            sys.executable,
            harness,
            f"-atheris_runs={runs}",
            f"-artifact_prefix={tmp_path}/",
            "-rss_limit_mb=4096",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"Done {runs}" in proc.stderr
