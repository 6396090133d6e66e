"""Driver of ``scripts/gpu_check.sh``: every GPU check of the project in one run, one report (standard library only).

Sized for one ~8-minute call on a freshly started GPU machine (e.g. one H200, 16 cores, no network): all steps share
a 450 s budget (``FRPT_GPU_CHECK_BUDGET_S``). Steps, each with its own time limit (capped by what is left of the
budget), each recorded as passed / failed / skipped with its log:

1. **GPU?** ``nvidia-smi -L`` (or, without nvidia-smi, ``torch.cuda.is_available()``). None: print
   ``no CUDA GPU``, write the report, exit 0.
2. **Python**: the first of ``.venv/bin/python``, the machine's ``python3`` whose torch sees CUDA; else
   ``scripts/setup_env.sh`` (needs the package registry) and the venv. The repository's three package roots go on
   ``PYTHONPATH``; wheels in an ignored ``.whl/`` folder (carried to an offline machine) are installed into a
   temporary target first (``pip --no-index --no-deps``). onnxruntime-gpu: from ``.whl/`` or, when the registry
   answers, ``pip install onnxruntime-gpu`` into that target; otherwise the ORT CUDA rows skip.
3. **Plugin**: with TensorRT headers (``$TensorRT_ROOT/include``, the system's, or ``.trt/*/include``) CMake builds
   ``plugins/`` for this GPU's architecture (``build/gpu_check/plugin``).
4. **Tests** (pytest, JUnit XML parsed into the report): the GPU-marked tests (kernels fp32/fp16 vs the reference
   incl. NaN-poisoned outputs and non-finite inputs, CUDA-graph capture; CUDA AMP training; the cuda_memory round
   trip; TensorRT-backend execution) and the plugin contract harness on the GPU (``--require-gpu``, under
   compute-sanitizer memcheck when present), the TensorRT plan deserialisation.
5. **Benchmarks**: ``benchmarks/bench_sampler_kernels.py`` and ``benchmarks/bench_embed.py --gpu-only``.

The report names the GPU, driver, CUDA, nvcc, torch, ONNX Runtime (and its providers), TensorRT, CMake and
compute-sanitizer versions. The exit status is 1 when a step failed, else 0.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROOTS = [str(REPO), str(REPO / "export"), str(REPO / "runtime")]
GPU_TESTS = [
    "tests/test_kernel_gpu.py",
    "tests/test_runtime_cuda.py",
    "tests/test_train.py",
    "tests/test_runtime_backends.py",
]
TRT_TESTS = ["tests/test_plugin_contract.py", "tests/test_trt_build.py::test_plan_deserialises_where_a_gpu_runs_it"]
NO_GPU = "no CUDA GPU"
BUDGET_S = float(os.environ.get("FRPT_GPU_CHECK_BUDGET_S", "450"))  # the whole run, so it fits one 8-minute call
DEADLINE = time.monotonic() + BUDGET_S


def out_dir() -> Path:
    folder = Path(os.environ.get("FRPT_GPU_CHECK_OUT") or os.environ.get("OUT") or REPO / "runs" / "gpu_check")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def sh(cmd: list[str], log: Path, timeout: float, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run ``cmd`` with its output in ``log``; ``(exit status, last lines)``; 124 when it ran past ``timeout``.

    The limit is ``timeout`` or what is left of the run's budget (``FRPT_GPU_CHECK_BUDGET_S``), the smaller.
    """
    timeout = max(1.0, min(timeout, DEADLINE - time.monotonic()))
    with log.open("w") as handle:
        try:
            code = subprocess.run(
                cmd, stdout=handle, stderr=subprocess.STDOUT, timeout=timeout, env=env, cwd=REPO
            ).returncode
        except subprocess.TimeoutExpired:
            code = 124
        except OSError as exc:
            handle.write(f"cannot run {cmd[0]}: {exc}\n")
            code = 127
    return code, "\n".join(log.read_text(errors="replace").splitlines()[-15:])


def probe(cmd: list[str], timeout: float = 60) -> str:
    """First lines of a command's output, or '' when it is missing or fails."""
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def gpu_names() -> list[str]:
    if shutil.which("nvidia-smi"):
        return [line for line in probe(["nvidia-smi", "-L"]).splitlines() if line.startswith("GPU")]
    found = probe(
        [sys.executable, "-c", "import torch; print(torch.cuda.get_device_name() if torch.cuda.is_available() else '')"]
    )
    return [found] if found else []


def python_with_cuda(steps: list[dict]) -> str | None:
    """The interpreter that runs the checks (see the module docstring), or None."""
    check = "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"
    candidates = [str(REPO / ".venv/bin/python"), shutil.which("python3") or ""]
    for python in candidates:
        if (
            python
            and Path(python).exists()
            and subprocess.run([python, "-c", check], capture_output=True).returncode == 0
        ):
            return python
    code, tail = sh(["bash", "scripts/setup_env.sh"], out_dir() / "setup_env.log", 900)
    steps.append(step("setup_env.sh", "passed" if code == 0 else "failed", tail))
    venv = REPO / ".venv/bin/python"
    if code == 0 and subprocess.run([str(venv), "-c", check], capture_output=True).returncode == 0:
        return str(venv)
    return None


def step(name: str, status: str, detail: str = "", seconds: float = 0.0) -> dict:
    return {"name": name, "status": status, "detail": detail, "seconds": round(seconds, 1)}


def environment(python: str, env: dict[str, str]) -> dict:
    code = (
        "import json, torch\n"
        "info = {'torch': torch.__version__, 'cuda (torch)': torch.version.cuda, 'gpu': torch.cuda.get_device_name(),"
        " 'capability': '.'.join(map(str, torch.cuda.get_device_capability()))}\n"
        "for name in ('onnxruntime', 'tensorrt', 'tensorrt_rtx', 'onnx', 'timm', 'numpy', 'PIL'):\n"
        "    try:\n"
        "        module = __import__(name); info[name] = getattr(module, '__version__', '?')\n"
        "    except Exception as exc: info[name] = f'missing ({type(exc).__name__})'\n"
        "try:\n"
        "    import onnxruntime; info['onnxruntime providers'] = ','.join(onnxruntime.get_available_providers())\n"
        "except Exception: pass\n"
        "print(json.dumps(info))\n"
    )
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    info = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else {"error": done.stderr[-500:]}
    smi = probe(["nvidia-smi", "--query-gpu=driver_version,memory.total", "--format=csv,noheader"])
    info.update(
        {
            "python": probe([python, "--version"]) or python,
            "driver, memory": smi,
            "nvcc": (probe(["nvcc", "--version"]).splitlines() or [""])[-1],
            "cmake": (probe(["cmake", "--version"]).splitlines() or [""])[0],
            "compute-sanitizer": (probe(["compute-sanitizer", "--version"]).splitlines() or ["missing"])[-1],
            "host": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores",
        }
    )
    return info


def setup_packages(python: str, env: dict[str, str], steps: list[dict]) -> None:
    """Carried wheels (``.whl/``) and onnxruntime-gpu into a temporary target on ``PYTHONPATH``."""
    target = Path(tempfile.mkdtemp(prefix="frpt-gpu-site-"))
    wheels = sorted(str(p) for p in (REPO / ".whl").glob("*.whl"))
    pip = [python, "-m", "pip", "install", "-q", "--no-deps", "--no-compile", "--target", str(target)]
    if wheels:
        code, tail = sh([*pip, "--no-index", *wheels], out_dir() / "wheels.log", 300)
        steps.append(step(f"install {len(wheels)} carried wheels", "passed" if code == 0 else "failed", tail))
    env["PYTHONPATH"] = os.pathsep.join([str(target), *ROOTS, env.get("PYTHONPATH", "")])
    has_cuda_ep = (
        "import onnxruntime, sys; sys.exit('CUDAExecutionProvider' not in onnxruntime.get_available_providers())"
    )
    if subprocess.run([python, "-c", has_cuda_ep], env=env, capture_output=True).returncode == 0:
        return
    code, tail = sh(
        [*pip, "--retries", "0", "--timeout", "10", "onnxruntime-gpu"], out_dir() / "onnxruntime_gpu.log", 240
    )
    steps.append(step("pip install onnxruntime-gpu", "passed" if code == 0 else "skipped", tail if code else ""))


def trt_include() -> Path | None:
    root = os.environ.get("TensorRT_ROOT")  # noqa: SIM112 - the name CMake and the plugin build use
    roots = [Path(root) / "include"] if root else []
    roots += [Path("/usr/include/x86_64-linux-gnu"), Path("/usr/include/aarch64-linux-gnu"), Path("/usr/include")]
    roots += sorted((REPO / ".trt").glob("*/include"), reverse=True)
    return next((root for root in roots if (root / "NvInferRuntime.h").is_file()), None)


def build_plugin(capability: str, steps: list[dict]) -> None:
    include = trt_include()
    if include is None:
        steps.append(step("plugin build", "skipped", "no TensorRT headers (TensorRT_ROOT, system, .trt/*/include)"))
        return
    build, start = REPO / "build" / "gpu_check" / "plugin", time.perf_counter()
    arch = capability.replace(".", "") or "native"
    configure = [
        "cmake",
        "-S",
        "plugins",
        "-B",
        str(build),
        f"-DTensorRT_INCLUDE_DIR={include}",
        f"-DCMAKE_CUDA_ARCHITECTURES={arch}",
    ]
    code, tail = sh(configure, out_dir() / "plugin_configure.log", 180)
    if code == 0:
        code, tail = sh(
            ["cmake", "--build", str(build), "-j", str(os.cpu_count() or 4)], out_dir() / "plugin_build.log", 300
        )
    built = (build / "libfrpt_plugins.so").is_file()
    status = "passed" if code == 0 and built else "failed"
    steps.append(step(f"plugin build ({include})", status, tail, time.perf_counter() - start))


def run_tests(
    python: str, env: dict[str, str], name: str, args: list[str], timeout: float, steps: list[dict]
) -> list[dict]:
    """One pytest run; its test cases as ``{id, status, message}``."""
    xml, start = out_dir() / f"junit_{name}.xml", time.perf_counter()
    code, tail = sh(
        [python, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", f"--junitxml={xml}", *args],
        out_dir() / f"pytest_{name}.log",
        timeout,
        env,
    )
    cases = parse_junit(xml)
    failed = sum(case["status"] == "failed" for case in cases)
    status = "failed" if code not in (0, 5) or failed else "passed" if cases else "skipped"
    counts = ", ".join(f"{sum(c['status'] == s for c in cases)} {s}" for s in ("passed", "failed", "skipped"))
    steps.append(step(f"pytest {name}", status, counts if code in (0, 1, 5) else tail, time.perf_counter() - start))
    return cases


def parse_junit(xml: Path) -> list[dict]:
    if not xml.is_file():
        return []
    cases = []
    for case in ET.parse(xml).getroot().iter("testcase"):
        status, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error"):
                status, message = "failed", (child.get("message") or "")[:300]
            elif child.tag == "skipped":
                status, message = "skipped", (child.get("message") or "")[:300]
        cases.append({"id": f"{case.get('classname')}::{case.get('name')}", "status": status, "message": message})
    return cases


def benchmark(python: str, env: dict[str, str], name: str, cmd: list[str], timeout: float, steps: list[dict]) -> str:
    start = time.perf_counter()
    code, _ = sh([python, *cmd], out_dir() / f"bench_{name}.log", timeout, env)
    text = (out_dir() / f"bench_{name}.log").read_text(errors="replace")
    steps.append(
        step(
            f"benchmark {name}",
            "passed" if code == 0 else "failed",
            "" if code == 0 else text[-1500:],
            time.perf_counter() - start,
        )
    )
    return "\n".join(text.splitlines()[-40:])


def write_report(report: dict) -> None:
    folder = out_dir()
    (folder / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [f"# GPU check: {report['verdict']}", "", f"{report['started']}, {report['seconds']} s", ""]
    lines += ["## Environment", "", *[f"- {key}: {value}" for key, value in report["environment"].items()], ""]
    lines += ["## Steps", "", "| step | status | s | detail |", "|---|---|---|---|"]
    lines += [
        f"| {s['name']} | {s['status']} | {s['seconds']} | {' '.join(s['detail'].split())[:300]} |"
        for s in report["steps"]
    ]
    not_passed = [c for c in report["tests"] if c["status"] != "passed"]
    lines += ["", f"## Tests: {len(report['tests'])} cases, not passed: {len(not_passed)}", ""]
    lines += [f"- {c['status']}: `{c['id']}` {c['message']}" for c in not_passed]
    for name, table in report["benchmarks"].items():
        lines += ["", f"## {name}", "", "```", table, "```"]
    (folder / "gpu_check.md").write_text("\n".join(lines) + "\n")


def checks(python: str, steps: list[dict], report: dict) -> None:
    env = dict(os.environ)
    setup_packages(python, env, steps)
    report["environment"] = environment(python, env)
    build_plugin(report["environment"].get("capability", ""), steps)
    report["tests"] += run_tests(python, env, "gpu", ["-m", "gpu or tensorrt", *GPU_TESTS], 180, steps)
    report["tests"] += run_tests(python, env, "tensorrt", TRT_TESTS, 120, steps)
    report["benchmarks"]["sampler kernels"] = benchmark(
        python, env, "kernels", ["benchmarks/bench_sampler_kernels.py", "--iters", "30"], 60, steps
    )
    report["benchmarks"]["embed GPU rows"] = benchmark(
        python, env, "embed", ["benchmarks/bench_embed.py", "--gpu-only"], 120, steps
    )


def main() -> int:
    start, steps = time.perf_counter(), []
    report = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "gpus": gpu_names(),
        "environment": {},
        "steps": steps,
        "tests": [],
        "benchmarks": {},
    }
    if not report["gpus"]:
        print(f"{NO_GPU}: nothing to check here (nvidia-smi / torch find no device); report in {out_dir()}")
        report["environment"] = {"python": sys.version.split()[0], "host": f"{platform.node()} {platform.machine()}"}
        steps.append(step("find a CUDA GPU", "skipped", NO_GPU))
        report.update(verdict=NO_GPU, seconds=round(time.perf_counter() - start, 1))
        write_report(report)
        return 0
    python = python_with_cuda(steps)
    if python is None:
        steps.append(
            step("python with CUDA torch", "failed", "neither .venv nor python3 has a torch that sees the GPU")
        )
    else:
        checks(python, steps, report)
    failed = [s["name"] for s in steps if s["status"] == "failed"]
    report.update(
        verdict="FAILED: " + ", ".join(failed) if failed else "passed", seconds=round(time.perf_counter() - start, 1)
    )
    write_report(report)
    for entry in steps:
        print(f"{entry['status']:>8}  {entry['name']}  ({entry['seconds']} s)")
    print(f"GPU check {report['verdict']} on {', '.join(report['gpus'])}: {out_dir() / 'gpu_check.md'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
