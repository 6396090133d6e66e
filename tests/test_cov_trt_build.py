"""The engine builder's plugin, workspace, timing-cache and failed-build paths (issue 15, coverage part).

TensorRT-RTX (the builder importable here) has no plugins and keeps no timing cache, so these paths would only
run under full TensorRT. A small fake ``tensorrt`` module -- builder, parser, config, timing cache, all recording
what they were asked -- stands in for it, so each path is checked for what it does: the workspace limit in
bytes, the cache loaded from the file and written back, the plugin library loaded through this module before
parsing, nothing left at the plan path when the build fails. The real builders' behaviour on real graphs is
tests/test_trt_build.py's.
"""

from __future__ import annotations

import types

import pytest
from runtime_toys import TOY_SIZE, make_toy_onnx, toy_metadata

from frpt_export import trt_build
from frpt_export.trt_build import BatchProfile, build_engine
from frpt_runtime.engine_sidecar import read_sidecar
from frpt_runtime.errors import FrptError


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.plan: bytes | None = b"fake serialized engine"
        self.cache_out = b"timing cache v2"


def _fake_trt(rec: _Recorder, *, strongly_typed: bool = True) -> types.ModuleType:
    trt = types.ModuleType("tensorrt")
    trt.__version__ = "10.3.0"

    class Logger:
        WARNING = 2

        def __init__(self, level):
            rec.calls.append(("logger", level))

    class TimingCache:
        def __init__(self, data: bytes) -> None:
            self.data = data

        def serialize(self) -> bytes:
            return rec.cache_out

    class Profile:
        def set_shape(self, name, low, opt, high):
            rec.calls.append(("profile", name, low, opt, high))

    class Config:
        def set_memory_pool_limit(self, pool, size):
            rec.calls.append(("workspace", pool, size))

        def add_optimization_profile(self, profile):
            rec.calls.append(("add_profile",))

        def create_timing_cache(self, data):
            rec.calls.append(("create_cache", bytes(data)))
            return TimingCache(bytes(data))

        def set_timing_cache(self, cache, ignore_mismatch):
            rec.calls.append(("set_cache", cache.data, ignore_mismatch))

        def get_timing_cache(self):
            return TimingCache(b"")

    class Builder:
        def __init__(self, logger):
            pass

        def create_network(self, flags):
            rec.calls.append(("network", flags))
            return object()

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            rec.calls.append(("build",))
            return rec.plan

    class OnnxParser:
        num_errors = 0

        def __init__(self, network, logger):
            pass

        def parse_from_file(self, path):
            rec.calls.append(("parse", path))
            return True

    trt.Logger, trt.Builder, trt.OnnxParser = Logger, Builder, OnnxParser
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE="WORKSPACE")
    trt.NetworkDefinitionCreationFlag = types.SimpleNamespace(**({"STRONGLY_TYPED": 5} if strongly_typed else {}))
    return trt


@pytest.fixture
def rec(monkeypatch):
    recorder = _Recorder()
    trt = _fake_trt(recorder)
    monkeypatch.setattr(trt_build, "import_tensorrt", lambda hint: (trt, "tensorrt"))
    monkeypatch.setattr(trt_build, "_gpu", lambda: ("Fake GPU", "8.7"))
    recorder.trt = trt
    return recorder


def test_workspace_limit_is_set_in_bytes_and_the_profile_spans_the_batches(tmp_path, rec):
    onnx_path = tmp_path / "model.onnx"
    make_toy_onnx(onnx_path)
    report = build_engine(onnx_path, tmp_path / "out" / "m.plan", BatchProfile(2, 3, 5), workspace_mib=96)
    assert ("workspace", "WORKSPACE", 96 << 20) in rec.calls
    shape = (TOY_SIZE, TOY_SIZE, 3)
    assert ("profile", "images", (2, *shape), (3, *shape), (5, *shape)) in rec.calls
    assert ("network", 1 << 5) in rec.calls  # strongly typed
    assert (tmp_path / "out" / "m.plan").read_bytes() == b"fake serialized engine"
    assert report.trt_flavour == "tensorrt" and report.timing_cache is None and report.plan_bytes == 22
    side = read_sidecar(tmp_path / "out" / "m.plan")
    assert (side.gpu_name, side.compute_capability, side.trt_version) == ("Fake GPU", "8.7", "10.3.0")
    assert side.bundle_sha256 is None  # no bundle beside the toy model


def test_default_workspace_is_left_to_tensorrt_and_old_modules_get_no_typing_flag(tmp_path, rec, monkeypatch):
    trt = _fake_trt(rec, strongly_typed=False)
    monkeypatch.setattr(trt_build, "import_tensorrt", lambda hint: (trt, "tensorrt"))
    onnx_path = tmp_path / "model.onnx"
    make_toy_onnx(onnx_path)
    build_engine(onnx_path, tmp_path / "m.plan", BatchProfile(1, 1, 1))
    assert not [c for c in rec.calls if c[0] == "workspace"]
    assert ("network", 0) in rec.calls


def test_timing_cache_is_loaded_from_the_file_and_written_back(tmp_path, rec):
    onnx_path = tmp_path / "model.onnx"
    make_toy_onnx(onnx_path)
    cache = tmp_path / "timing.cache"
    report = build_engine(onnx_path, tmp_path / "a.plan", BatchProfile(1, 1, 2), timing_cache=cache)
    assert ("create_cache", b"") in rec.calls and ("set_cache", b"", False) in rec.calls  # no file yet: empty
    assert cache.read_bytes() == b"timing cache v2" and report.timing_cache == str(cache)
    rec.calls.clear()
    rec.cache_out = b"timing cache v3"
    build_engine(onnx_path, tmp_path / "b.plan", BatchProfile(1, 1, 2), timing_cache=cache)
    assert ("create_cache", b"timing cache v2") in rec.calls  # the saved cache is what the next build loads
    assert cache.read_bytes() == b"timing cache v3"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temp files


def test_timing_cache_under_tensorrt_rtx_is_ignored_with_a_note(tmp_path, rec, monkeypatch, capsys):
    monkeypatch.setattr(trt_build, "import_tensorrt", lambda hint: (rec.trt, "tensorrt_rtx"))
    onnx_path = tmp_path / "model.onnx"
    make_toy_onnx(onnx_path)
    cache = tmp_path / "timing.cache"
    report = build_engine(onnx_path, tmp_path / "a.plan", BatchProfile(1, 1, 2), timing_cache=cache)
    assert f"TensorRT-RTX keeps no timing cache; ignoring --timing-cache {cache}" in capsys.readouterr().err
    assert not cache.exists() and report.timing_cache is None
    assert not [c for c in rec.calls if c[0] == "create_cache"]


def test_failed_build_leaves_no_plan_no_sidecar_and_no_cache(tmp_path, rec):
    onnx_path = tmp_path / "model.onnx"
    make_toy_onnx(onnx_path)
    rec.plan = None
    plan = tmp_path / "m.plan"
    with pytest.raises(FrptError, match=r"^TensorRT could not build an engine from .*model.onnx: see the builder log"):
        build_engine(onnx_path, plan, BatchProfile(1, 1, 2), timing_cache=tmp_path / "t.cache")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


def test_plugin_graph_loads_the_plugin_library_through_this_tensorrt_before_parsing(tmp_path, rec, monkeypatch):
    onnx_path = tmp_path / "plugin.onnx"
    make_toy_onnx(onnx_path, plugin_node=True, metadata=toy_metadata(lowering="plugin"))
    loaded = []

    def fake_load(path, *, trt):
        loaded.append((path, trt))
        rec.calls.append(("plugin",))
        return "/opt/libfrpt_plugins.so"

    monkeypatch.setattr("frpt_runtime.plugin_library.load_plugin_library", fake_load)
    report = build_engine(onnx_path, tmp_path / "p.plan", BatchProfile(1, 1, 2), plugin_lib=tmp_path / "lib.so")
    assert loaded == [(tmp_path / "lib.so", rec.trt)]
    names = [c[0] for c in rec.calls]
    assert names.index("plugin") < names.index("parse")
    assert report.lowering == "plugin" and read_sidecar(tmp_path / "p.plan").plugin_required is True


def test_plugin_library_failure_stops_the_build_before_anything_is_written(tmp_path, rec, monkeypatch):
    onnx_path = tmp_path / "plugin.onnx"
    make_toy_onnx(onnx_path, plugin_node=True, metadata=toy_metadata(lowering="plugin"))

    def missing(path, *, trt):
        raise FrptError("plugin library libfrpt_plugins.so not found: build it with frpt-export build-plugin")

    monkeypatch.setattr("frpt_runtime.plugin_library.load_plugin_library", missing)
    with pytest.raises(FrptError, match="build it with frpt-export build-plugin"):
        build_engine(onnx_path, tmp_path / "p.plan")
    assert not [c for c in rec.calls if c[0] in ("parse", "build")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plugin.onnx"]


def test_standard_graph_never_loads_the_plugin(tmp_path, rec, monkeypatch):
    onnx_path = tmp_path / "model.onnx"
    make_toy_onnx(onnx_path)

    def forbidden(path, *, trt):
        raise AssertionError("the standard lowering needs no plugin")

    monkeypatch.setattr("frpt_runtime.plugin_library.load_plugin_library", forbidden)
    build_engine(onnx_path, tmp_path / "m.plan", BatchProfile(1, 1, 2))
    assert read_sidecar(tmp_path / "m.plan").plugin_required is False
