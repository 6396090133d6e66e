"""scripts/gpu_check.sh without a GPU: exit 0, says "no CUDA GPU", writes its report; the report's JUnit parsing."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_no_gpu_exits_0_says_so_and_writes_the_report(tmp_path: Path) -> None:
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    smi = fake_bin / "nvidia-smi"  # what nvidia-smi answers on a box without a driver
    smi.write_text(
        '#!/bin/sh\necho "NVIDIA-SMI has failed because it couldn\'t communicate with the NVIDIA driver."\nexit 9\n'
    )
    smi.chmod(0o755)
    out = tmp_path / "report"
    env = dict(os.environ, PATH=f"{fake_bin}{os.pathsep}{os.environ['PATH']}", FRPT_GPU_CHECK_OUT=str(out))
    done = subprocess.run(
        ["bash", "scripts/gpu_check.sh"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no CUDA GPU" in done.stdout
    report = json.loads((out / "gpu_check.json").read_text())
    assert report["verdict"] == "no CUDA GPU" and report["gpus"] == [] and report["steps"][0]["status"] == "skipped"
    assert (out / "gpu_check.md").read_text().startswith("# GPU check: no CUDA GPU")


def test_report_lists_what_passed_failed_and_skipped(tmp_path: Path, monkeypatch) -> None:
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "scripts" / "gpu_check.py")
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    xml = tmp_path / "junit.xml"
    xml.write_text(
        '<testsuites><testsuite name="pytest">'
        '<testcase classname="tests.test_kernel_gpu" name="test_a"/>'
        '<testcase classname="tests.test_kernel_gpu" name="test_b"><failure message="max |diff| 3e-3"/></testcase>'
        '<testcase classname="tests.test_runtime_backends" name="test_c"><skipped message="no TensorRT"/></testcase>'
        "</testsuite></testsuites>"
    )
    cases = gpu_check.parse_junit(xml)
    assert [c["status"] for c in cases] == ["passed", "failed", "skipped"] and cases[1]["message"] == "max |diff| 3e-3"
    monkeypatch.setenv("FRPT_GPU_CHECK_OUT", str(tmp_path / "out"))
    steps = [gpu_check.step("pytest gpu", "failed", "1 passed, 1 failed, 1 skipped", 12.0)]
    report = {"verdict": "FAILED: pytest gpu", "started": "now", "seconds": 12.0, "environment": {"gpu": "H200"}}
    gpu_check.write_report(report | {"steps": steps, "tests": cases, "benchmarks": {"kernels": "N fused"}})
    text = (tmp_path / "out" / "gpu_check.md").read_text()
    assert "- failed: `tests.test_kernel_gpu::test_b` max |diff| 3e-3" in text and "- skipped: " in text
    assert "| pytest gpu | failed | 12.0 |" in text and "- gpu: H200" in text
    assert json.loads((tmp_path / "out" / "gpu_check.json").read_text())["tests"] == cases
