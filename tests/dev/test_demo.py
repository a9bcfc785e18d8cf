"""`bosun demo` as a newcomer runs it: a governed Run to completion, and where to look next."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys
import urllib.request

import pytest

from bosun.dev import imagebuild, imagestore, provision

pytestmark = pytest.mark.cluster

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_the_demo_runs_a_governed_run_and_says_where_its_metrics_are(
    tmp_path: pathlib.Path, shipped_images: list[imagebuild.Built]
) -> None:
    folder = tmp_path / "dev"
    binaries = provision.ensure(["kubectl"])["kubectl"].parent
    env = {
        **os.environ,
        "BOSUN_CACHE_DIR": str(tmp_path / "cache"),
        "KUBEBUILDER_ASSETS": str(binaries),
        # The images this session built (a fresh cache would build them once more).
        imagestore.STORE_ENV: str(imagestore.Store.default().root),
    }
    try:
        demo = subprocess.run(
            [sys.executable, "-m", "bosun", "demo", "--dir", str(folder)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
        assert "delete-customer denied — demo-governance/deny-deletes" in demo.stdout
        found = re.search(r"Operator metrics: (http://127\.0\.0\.1:\d+/metrics)", demo.stdout)
        assert found, demo.stdout[-2000:]
        metrics = urllib.request.urlopen(found.group(1), timeout=10).read().decode()
        assert 'bosun_runs_total{outcome="Succeeded"} 1.0' in metrics
        assert "run demo -n default --input 'Hello' --wait" in demo.stdout
        # The operator (the chart's Deployment) and the Run's runner ran from the shipped images.
        for built in shipped_images:
            pods, container = (
                ("default", "runner")
                if built.name == "bosun-runner"
                else ("bosun-system", "operator")
            )
            launches = list(folder.glob(f"**/pods/{pods}_*/{container}.launch.json"))
            assert launches, f"no {container} pod ran from {built.reference}"
            assert all(str(built.image.rootfs) in path.read_text() for path in launches)
    finally:
        subprocess.run(
            [sys.executable, "-m", "bosun", "dev", "down", "--dir", str(folder)],
            env=env,
            capture_output=True,
            timeout=120,
            check=False,
        )
