"""``frpt-export triton``: a Triton Inference Server model repository for an ONNX export or a TensorRT plan.

Layout (Triton's model repository convention)::

    <out>/<name>/config.pbtxt          platform, max_batch_size, I/O, instance group, dynamic batching
    <out>/<name>/README.md             how to serve and query it, and what to check first
    <out>/<name>/1/model.onnx | model.plan  (+ model.plan.json, the engine sidecar; + model.ref.npz when present)
    <out>/<name>/libfrpt_plugins.so, libfrpt_plugins_autoload.so   (a plugin engine only)

The I/O comes from the contract (:mod:`frpt_runtime.contract`): ``images`` uint8 ``[N, S, S, 3]`` becomes
``TYPE_UINT8`` dims ``[S, S, 3]`` and ``embedding`` float32 ``[N, D]`` becomes ``TYPE_FP32`` dims ``[D]``, with the
batch axis carried by ``max_batch_size`` (Triton's convention). ``S`` is the export's ``input_size``; ``D`` is the
ONNX graph's output width, or for a plan (which cannot be opened without a GPU) the reference bundle's. An ONNX
file is checked against the contract before anything is written; a plan's ``max_batch_size`` is its profile's.

A plugin engine gets the plugin library and its self-registering loader copied beside it, and the serve command
gains ``--backend-config=tensorrt,plugins=/models/<name>/libfrpt_plugins_autoload.so`` (``config.pbtxt`` cannot
name plugin libraries; :mod:`frpt_export.triton_plugin`). Refused in one line naming what does work: a
plugin-lowered graph (Triton's ONNX Runtime has no kernel for ``frpt::InhomogeneousSample``).
"""

from __future__ import annotations

import dataclasses
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from frpt_export.triton_plugin import TritonPlugin, backend_config, find_triton_plugin, ld_preload
from frpt_runtime import __version__
from frpt_runtime.atomic import atomic_write
from frpt_runtime.bundle import load_bundle
from frpt_runtime.contract import (
    INPUT_NAME,
    OUTPUT_NAME,
    ExportMetadata,
    Lowering,
    StrChoice,
    bundle_path_for,
    is_engine_path,
    sidecar_path_for,
)
from frpt_runtime.devices import parse_device
from frpt_runtime.engine_sidecar import EngineSidecar, read_sidecar
from frpt_runtime.errors import FrptError
from frpt_runtime.output_paths import check_output_dir

__all__ = ["OrtAccelerator", "TritonJob", "TritonReport", "config_text", "write_triton_repository"]

ONNX_PLATFORM, PLAN_PLATFORM = "onnxruntime_onnx", "tensorrt_plan"
DEFAULT_ONNX_MAX_BATCH = 64
VERSION = "1"
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
SERVE_IMAGE = "nvcr.io/nvidia/tritonserver:<yy.mm>-py3"


class OrtAccelerator(StrChoice):
    """ONNX Runtime's GPU execution accelerator in Triton (``optimization.execution_accelerators``)."""

    none = "none"  # the CUDA execution provider
    tensorrt = "tensorrt"  # TensorRT execution provider, FP32 (the graph's own precision)
    tensorrt_fp16 = "tensorrt-fp16"  # TensorRT execution provider with precision_mode FP16


@dataclass(frozen=True)
class TritonJob:
    """What ``frpt-export triton`` was asked for.

    Attributes:
        model: an ``.onnx`` export or a TensorRT plan (with its sidecar ``<plan>.json``).
        out: the model repository folder (created if absent; other models in it are left alone).
        name: the model's name in the repository (default: the file's stem, dots as underscores).
        max_batch: ``max_batch_size``; ONNX default 64; a plan's default (and ceiling) is its profile's max.
        preferred_batch: dynamic batching's preferred sizes (default: a plan's opt and max batch; ONNX: max).
        max_queue_delay_us: how long the dynamic batcher waits to fill a preferred batch.
        instances: model instances per device.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` -> instance kind (and GPU) of the instance group.
        ort_accelerator: ONNX on a GPU: ONNX Runtime's CUDA provider, or its TensorRT provider (FP32 / FP16).
        bundle: the reference bundle (default: beside the model); a plan's embedding width is read from it.
        plugin_lib: a plugin engine's ``libfrpt_plugins.so`` (default: ``$FRPT_PLUGIN_LIB``, then the runtime's
            search); ``libfrpt_plugins_autoload.so`` must be beside it (``frpt-export build-plugin`` builds both).
    """

    model: Path
    out: Path = Path("model_repository")
    name: str | None = None
    max_batch: int | None = None
    preferred_batch: tuple[int, ...] = ()
    max_queue_delay_us: int = 100
    instances: int = 1
    device: str = "auto"
    ort_accelerator: OrtAccelerator = OrtAccelerator.none
    bundle: Path | None = None
    plugin_lib: Path | None = None


@dataclass(frozen=True)
class _Served:
    """The facts of the model to serve: platform, metadata, ``S``, ``D`` and the batch limits."""

    platform: str
    metadata: ExportMetadata
    size: int
    width: int
    profile_max: int | None
    preferred: tuple[int, ...]
    sidecar: EngineSidecar | None
    plugin: TritonPlugin | None = None


@dataclass(frozen=True)
class TritonReport:
    """The repository written and the facts in its ``config.pbtxt``."""

    model_dir: str
    config_path: str
    model_file: str
    platform: str
    max_batch_size: int
    input_dims: list[int]
    output_dims: list[int]
    preferred_batch_size: list[int]
    instance_kind: str
    accelerator: str | None
    serve_command: str
    notes: list[str] = field(default_factory=list)
    plugin_libraries: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return True

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def format(self) -> str:
        """Human summary: the model folder and its config, how to serve it, then the notes."""
        lines = [
            f"triton  {self.model_dir}: {self.platform}, max_batch_size {self.max_batch_size}, {INPUT_NAME} "
            f"TYPE_UINT8 {self.input_dims} -> {OUTPUT_NAME} TYPE_FP32 {self.output_dims}, {self.instance_kind}, "
            f"preferred batch {self.preferred_batch_size}" + (f", {self.accelerator}" if self.accelerator else ""),
            f"wrote   {self.config_path}, {self.model_file}, {Path(self.model_dir) / 'README.md'}",
            f"serve   {self.serve_command}",
        ]
        lines += [f"plugin  {library}" for library in self.plugin_libraries]
        return "\n".join(lines + [f"note    {note}" for note in self.notes])


def _onnx_io(path: Path) -> tuple[list[tuple[str, int, list[int]]], list[tuple[str, int, list[int]]]]:
    """``(inputs, outputs)`` of an ONNX graph as ``(name, elem_type, dims)`` with ``-1`` for symbolic dims."""
    import onnx

    proto = onnx.load_model(str(path), load_external_data=False)
    weights = {init.name for init in proto.graph.initializer}

    def describe(value: Any) -> tuple[str, int, list[int]]:
        tensor = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim]
        return value.name, tensor.elem_type, dims

    inputs = [describe(v) for v in proto.graph.input if v.name not in weights]
    return inputs, [describe(v) for v in proto.graph.output]


def _onnx_width(path: Path, size: int) -> int:
    """``D`` of an export whose I/O obeys the contract (checked here).

    Raises:
        FrptError: other I/O names, dtypes or shapes than ``images`` uint8 ``[N, S, S, 3]`` -> ``embedding``
            float32 ``[N, D]``.
    """
    from onnx import TensorProto

    inputs, outputs = _onnx_io(path)
    expected_in = [(INPUT_NAME, TensorProto.UINT8, [size, size, 3])]
    if [(n, t, d[1:]) for n, t, d in inputs] != expected_in or len(outputs) != 1 or len(outputs[0][2]) != 2:
        raise FrptError(f"{path}: inputs {inputs} are not the contract's {INPUT_NAME} uint8 [N, {size}, {size}, 3]")
    name, elem_type, dims = outputs[0]
    if (name, elem_type) != (OUTPUT_NAME, TensorProto.FLOAT) or dims[1] < 1:
        raise FrptError(f"{path}: output {outputs[0]} is not the contract's {OUTPUT_NAME} float32 [N, D]")
    return dims[1]


def _bundle_width(job: TritonJob, size: int) -> int:
    """``D`` of a plan, from its reference bundle (the sidecar does not record it)."""
    path = job.bundle or bundle_path_for(job.model)
    if not path.is_file():
        raise FrptError(
            f"{job.model}: a plan's embedding width is read from its reference bundle, and {path} is not there: "
            "keep the bundle frpt-export onnx wrote beside the plan, or pass --bundle"
        )
    bundle = load_bundle(path)
    if bundle.config.input_size != size:
        raise FrptError(f"{path} is for {bundle.config.input_size} px inputs, {job.model} takes {size}: wrong bundle")
    return int(bundle.embeddings.shape[1])


def _served(job: TritonJob) -> _Served:
    """Read the model's facts (plan: its sidecar and bundle; ONNX: its metadata and I/O)."""
    if not job.model.is_file():
        raise FrptError(f"model file not found: {job.model}")
    if is_engine_path(job.model):
        sidecar = read_sidecar(job.model)
        if job.plugin_lib is not None and not sidecar.plugin_required:
            raise FrptError(f"--plugin-lib is for plugin engines; {job.model} needs no plugin (drop the option)")
        plugin = find_triton_plugin(job.plugin_lib, job.model, sidecar.trt_version) if sidecar.plugin_required else None
        if sidecar.min_batch > 1:
            raise FrptError(
                f"{job.model}'s profile starts at batch {sidecar.min_batch}: Triton sends batches of 1 too; rebuild "
                "it with `frpt-export trt --min-batch 1`"
            )
        size = sidecar.metadata.config.input_size
        preferred = tuple(sorted({sidecar.opt_batch, sidecar.max_batch}))
        width = _bundle_width(job, size)
        return _Served(PLAN_PLATFORM, sidecar.metadata, size, width, sidecar.max_batch, preferred, sidecar, plugin)
    if job.plugin_lib is not None:
        raise FrptError("--plugin-lib is for plugin engines (model.plan); an ONNX model in Triton takes no plugin")
    from frpt_export.onnx_meta import read_graph_facts

    facts = read_graph_facts(job.model)
    if facts.plugin_required or facts.metadata.lowering is Lowering.plugin:
        raise FrptError(
            f"{job.model} is plugin-lowered: Triton's ONNX Runtime has no kernel for its frpt::InhomogeneousSample "
            "node; export the standard lowering (frpt-export onnx --lowering standard)"
        )
    size = facts.metadata.config.input_size
    return _Served(ONNX_PLATFORM, facts.metadata, size, _onnx_width(job.model, size), None, (), None)


def _max_batch(job: TritonJob, served: _Served) -> int:
    if served.profile_max is None:
        return job.max_batch or DEFAULT_ONNX_MAX_BATCH
    if job.max_batch is not None and job.max_batch > served.profile_max:
        raise FrptError(
            f"--max-batch {job.max_batch} is above the plan's profile ({served.profile_max}): rebuild with "
            f"`frpt-export trt --max-batch {job.max_batch}` or lower it"
        )
    return job.max_batch or served.profile_max


def _instance_group(job: TritonJob, served: _Served) -> dict[str, Any]:
    """``instance_group`` entry from ``--device`` and ``--instances``."""
    device = parse_device(job.device)
    on_gpu = served.platform == PLAN_PLATFORM or job.ort_accelerator is not OrtAccelerator.none
    if device.kind == "cpu" and on_gpu:
        what = "a TensorRT plan" if served.platform == PLAN_PLATFORM else f"--ort-accelerator {job.ort_accelerator}"
        raise FrptError(f"--device cpu cannot run {what}: it needs a GPU (use --device cuda, or drop the option)")
    kind = {"cpu": "KIND_CPU", "cuda": "KIND_GPU"}.get(device.kind, "KIND_GPU" if on_gpu else "KIND_AUTO")
    group: dict[str, Any] = {"count": job.instances, "kind": _Enum(kind)}
    if device.index is not None:
        group["gpus"] = [device.index]
    return group


def _accelerator(job: TritonJob, size: int, max_batch: int, opt: int) -> dict[str, Any] | None:
    """ONNX Runtime's TensorRT execution provider block, with the batch profile it should build for."""
    if job.ort_accelerator is OrtAccelerator.none:
        return None
    shape = f"{size}x{size}x3"
    parameters = {
        "precision_mode": "FP16" if job.ort_accelerator is OrtAccelerator.tensorrt_fp16 else "FP32",
        "trt_engine_cache_enable": "1",
        "trt_profile_min_shapes": f"{INPUT_NAME}:1x{shape}",
        "trt_profile_opt_shapes": f"{INPUT_NAME}:{opt}x{shape}",
        "trt_profile_max_shapes": f"{INPUT_NAME}:{max_batch}x{shape}",
    }
    entry = {"name": "tensorrt", "parameters": [{"key": k, "value": v} for k, v in parameters.items()]}
    return {"execution_accelerators": {"gpu_execution_accelerator": [entry]}}


class _Enum(str):
    """A protobuf text-format enum value, written bare (``KIND_GPU``, ``TYPE_UINT8``)."""


def _scalar(value: Any) -> str:
    if isinstance(value, _Enum):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _text_format(message: dict[str, Any], indent: int = 0) -> list[str]:
    """Protobuf text format of a message given as a dict (nested dicts: messages; lists: repeated fields)."""
    pad, lines = "  " * indent, []
    for key, value in message.items():
        if isinstance(value, dict):
            lines += [f"{pad}{key} {{", *_text_format(value, indent + 1), f"{pad}}}"]
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            for item in value:
                lines += [f"{pad}{key} {{", *_text_format(item, indent + 1), f"{pad}}}"]
        elif isinstance(value, list):
            lines.append(f"{pad}{key}: [ {', '.join(_scalar(item) for item in value)} ]")
        else:
            lines.append(f"{pad}{key}: {_scalar(value)}")
    return lines


def _preferred(job: TritonJob, served: _Served, max_batch: int) -> list[int]:
    """Dynamic batching's preferred sizes: ``--preferred-batch``, else the plan's opt + max batch, else the max."""
    if not job.preferred_batch:
        return sorted({min(size, max_batch) for size in served.preferred} or {max_batch})
    sizes = sorted(set(job.preferred_batch))
    if sizes[0] < 1 or sizes[-1] > max_batch:
        raise FrptError(f"--preferred-batch {sizes} must lie in 1..{max_batch} (the max_batch_size)")
    return sizes


def _config(job: TritonJob, served: _Served, name: str) -> dict[str, Any]:
    """``ModelConfig`` fields (Triton's ``model_config.proto``) as a dict."""
    max_batch = _max_batch(job, served)
    preferred = _preferred(job, served, max_batch)
    config: dict[str, Any] = {
        "name": name,
        "platform": served.platform,
        "max_batch_size": max_batch,
        "input": [{"name": INPUT_NAME, "data_type": _Enum("TYPE_UINT8"), "dims": [served.size, served.size, 3]}],
        "output": [{"name": OUTPUT_NAME, "data_type": _Enum("TYPE_FP32"), "dims": [served.width]}],
        "instance_group": [_instance_group(job, served)],
        "dynamic_batching": {
            "preferred_batch_size": preferred,
            "max_queue_delay_microseconds": job.max_queue_delay_us,
        },
    }
    if served.platform == ONNX_PLATFORM:
        accelerator = _accelerator(job, served.size, max_batch, preferred[-1])
        config.update({"optimization": accelerator} if accelerator else {})
    elif job.ort_accelerator is not OrtAccelerator.none:
        raise FrptError("--ort-accelerator is for ONNX models (Triton's ONNX Runtime backend); a plan is TensorRT")
    return config


def config_text(config: dict[str, Any], source: Path) -> str:
    """``config.pbtxt`` text for a config dict, with a provenance comment."""
    header = f"# written by frpt-export triton (frpt-toolkit {__version__}) from {source.name}"
    return "\n".join([header, *_text_format(config)]) + "\n"


def _notes(job: TritonJob, served: _Served, name: str, bundle_copied: bool) -> list[str]:
    """What to check before serving: the plan's TensorRT, FP16 in ONNX Runtime's TensorRT provider, parity."""
    notes = []
    side = served.sidecar
    if side is not None and side.trt_flavour == "tensorrt_rtx":
        notes.append(
            f"built with TensorRT-RTX {side.trt_version}: Triton's TensorRT backend loads full TensorRT plans only; "
            "rebuild it with the TensorRT of your Triton release (frpt-export trt --onnx MODEL.onnx where that "
            "TensorRT is installed, or trtexec in NVIDIA's TensorRT container of the same release) and replace "
            "1/model.plan"
        )
    elif side is not None:
        notes.append(
            f"a plan loads only in the TensorRT that built it ({side.trt_version}) on the GPU architecture it was "
            f"built for ({side.compute_capability or 'unknown'}): serve it with the Triton release that ships "
            f"TensorRT {side.trt_version}, on that GPU"
        )
    if job.ort_accelerator is OrtAccelerator.tensorrt_fp16:
        notes.append(
            "precision_mode FP16 lets TensorRT run any layer in half, also those the export keeps in float32 on "
            "purpose (saliency softmax, grid, InstanceNorm statistics, L2 norm): check parity before relying on it"
        )
    if served.plugin is not None:
        major, minor = served.plugin.built
        notes.append(
            f"plugin engine: tritonserver must load {served.plugin.autoload.name} from the model folder (the serve "
            "command's --backend-config=tensorrt,plugins=...; or prefix tritonserver with "
            f"`{ld_preload(name)}`); it registers {served.plugin.library.name} (built against TensorRT "
            f"{major}.{minor}) beside it, and refuses a TensorRT of another major in one line in Triton's log; build "
            "both for the Triton release's TensorRT and GPU, on a system whose glibc is not newer than the container's"
        )
    if bundle_copied:
        model_file = "model.plan" if served.platform == PLAN_PLATFORM else "model.onnx"
        notes.append(f"the reference bundle is in {VERSION}/: `frpt-verify {VERSION}/{model_file}` proves parity there")
    return notes


def _serve_command(out: Path, config: dict[str, Any], plugin: TritonPlugin | None) -> str:
    gpus = "" if config["instance_group"][0]["kind"] == "KIND_CPU" else "--gpus all "
    plugins = "" if plugin is None else " " + backend_config(config["name"])
    return (
        f"docker run {gpus}--rm -p 8000:8000 -p 8001:8001 -p 8002:8002 -v {out.resolve()}:/models {SERVE_IMAGE} "
        f"tritonserver --model-repository=/models{plugins}"
    )


def _plugin_readme(name: str, report: TritonReport) -> list[str]:
    """README lines of a plugin engine: which library Triton loads, and the LD_PRELOAD alternative."""
    if not report.plugin_libraries:
        return []
    autoload, library = (Path(p).name for p in report.plugin_libraries)
    preload = report.serve_command.replace(f" {backend_config(name)}", "").replace(
        "tritonserver ", f"{ld_preload(name)} tritonserver ", 1
    )
    return [
        "",
        f"The engine needs the FRPT TensorRT plugin. `config.pbtxt` cannot name plugin libraries, so the command "
        f"above loads `{autoload}` (in this folder) into Triton's TensorRT backend; it registers `{library}` (beside "
        "it) through TensorRT's plugin registry, and refuses a TensorRT of another major in one line in Triton's log. "
        "The same with `LD_PRELOAD` instead:",
        "",
        "```bash",
        preload,
        "```",
    ]


def _readme(name: str, served: _Served, source: Path, report: TritonReport) -> str:
    """The repository's README: what the model takes and returns, how to serve and query it, the notes."""
    meta, size = served.metadata, served.size
    lines = [
        f"# {name}: FRPT embedding model for Triton Inference Server",
        "",
        f"Written by `frpt-export triton` (frpt-toolkit {__version__}) from `{source.name}` ({meta.family}, "
        f"{meta.precision} graph, {meta.lowering} lowering), platform `{served.platform}`.",
        "",
        "| tensor | name | data_type | dims (batch axis: max_batch_size " + f"{report.max_batch_size}) |",
        "|---|---|---|---|",
        f"| input | `{INPUT_NAME}` | TYPE_UINT8 | [{size}, {size}, 3]: RGB, resized and centre-cropped by the client |",
        f"| output | `{OUTPUT_NAME}` | TYPE_FP32 | [{served.width}]: L2-normalised (cosine = dot product) |",
        "",
        "Serve (choose the `<yy.mm>` release; a plan needs the one whose TensorRT built it):",
        "",
        "```bash",
        report.serve_command,
        "```",
        *_plugin_readme(name, report),
        "",
        "Query (`pip install 'frpt-toolkit[triton]'`; the runtime's decoder gives the pixels frpt-embed would):",
        "",
        "```python",
        "import numpy as np",
        "import tritonclient.grpc as grpcclient",
        "from frpt_runtime.images import load_image",
        "",
        f"pixels = np.stack([load_image(p, {size}, {meta.config.crop_pct}, {meta.config.decoder!r}) "
        "for p in ['a.jpg', 'b.jpg']])",
        f'images = grpcclient.InferInput("{INPUT_NAME}", list(pixels.shape), "UINT8")',
        "images.set_data_from_numpy(pixels)",
        'client = grpcclient.InferenceServerClient("localhost:8001")',
        f'result = client.infer("{name}", [images], outputs=[grpcclient.InferRequestedOutput("{OUTPUT_NAME}")])',
        f'embeddings = result.as_numpy("{OUTPUT_NAME}")  # float32 [N, {served.width}]',
        "```",
    ]
    return "\n".join(lines + ([""] + [f"Note: {note}" for note in report.notes] if report.notes else [])) + "\n"


def _copy(source: Path, target: Path) -> None:
    with open(source, "rb") as src:
        atomic_write(target, lambda handle: shutil.copyfileobj(src, handle, 1 << 20))


def _copy_model_files(job: TritonJob, served: _Served, model_file: Path) -> tuple[bool, list[str]]:
    """Copy the model, its sidecar, its bundle (when there is one) and a plugin engine's two libraries.

    Returns:
        Whether a bundle was copied, and the libraries' paths in the model folder.
    """
    model_file.parent.mkdir(parents=True)
    _copy(job.model, model_file)
    if served.sidecar is not None:
        _copy(sidecar_path_for(job.model), sidecar_path_for(model_file))
    bundle = job.bundle or bundle_path_for(job.model)
    if bundle.is_file():
        _copy(bundle, bundle_path_for(model_file))
    libraries = [] if served.plugin is None else [served.plugin.autoload, served.plugin.library]
    for library in libraries:
        _copy(library, model_file.parent.parent / library.name)
        (model_file.parent.parent / library.name).chmod(0o755)
    return bundle.is_file(), [str(model_file.parent.parent / library.name) for library in libraries]


def write_triton_repository(job: TritonJob) -> TritonReport:
    """Write ``<out>/<name>/`` (config.pbtxt, README.md, ``1/model.onnx`` or ``1/model.plan`` + sidecar; a plugin
    engine's ``libfrpt_plugins_autoload.so`` + ``libfrpt_plugins.so``).

    Returns:
        The :class:`TritonReport`.

    Raises:
        FrptError: a missing or non-FRPT model, I/O off the contract, a plugin graph, a plugin engine without its
            two libraries (or with a plugin of another TensorRT major), a plan without sidecar or bundle, options
            the model cannot take, a bad name, an existing model folder, or an unwritable ``out`` -- all before
            anything is written.
    """
    name = job.name or job.model.stem.replace(".", "_")
    if not _NAME.match(name):
        raise FrptError(f"--name {name!r}: use letters, digits, '_', '.' and '-' only (it is a folder and a URL part)")
    if job.bundle is not None and not job.bundle.is_file():
        raise FrptError(f"--bundle {job.bundle} not found")
    served = _served(job)
    config = _config(job, served, name)
    check_output_dir(job.out, "-o/--out")
    model_dir = job.out / name
    if model_dir.exists():
        raise FrptError(f"{model_dir} already exists: remove it, or choose another --name")
    model_file = model_dir / VERSION / ("model.plan" if served.platform == PLAN_PLATFORM else "model.onnx")
    bundle_copied, libraries = _copy_model_files(job, served, model_file)
    atomic_write(model_dir / "config.pbtxt", lambda h: h.write(config_text(config, job.model).encode()))
    accelerator = config.get("optimization", {}).get("execution_accelerators")
    report = TritonReport(
        model_dir=str(model_dir),
        config_path=str(model_dir / "config.pbtxt"),
        model_file=str(model_file),
        platform=served.platform,
        max_batch_size=config["max_batch_size"],
        input_dims=config["input"][0]["dims"],
        output_dims=config["output"][0]["dims"],
        preferred_batch_size=config["dynamic_batching"]["preferred_batch_size"],
        instance_kind=str(config["instance_group"][0]["kind"]),
        accelerator=None if accelerator is None else f"ORT {job.ort_accelerator}",
        serve_command=_serve_command(job.out, config, served.plugin),
        notes=_notes(job, served, name, bundle_copied),
        plugin_libraries=libraries,
    )
    atomic_write(model_dir / "README.md", lambda h: h.write(_readme(name, served, job.model, report).encode()))
    return report
