"""``frpt-export trt`` as a library call: which graph to build, whether to export it first, where the plan goes.

Rules (the CLI only parses options into a :class:`TrtJob` and calls :func:`run_trt_job`):

* ``--onnx`` alone builds that graph in its own precision; ``--fp16`` on an fp32 graph needs ``--ckpt`` to
  export the fp16 graph on the fly (a graph's precision is in the graph, never a builder flag);
* ``--ckpt`` alone exports the graph (``--fp16`` for the fp16 one) beside the plan, so the plan's bundle is
  ``<plan stem>.ref.npz``, then builds it; an export that fails parity in ONNX Runtime is not built;
* the plan defaults to ``<onnx>.plan`` (or ``<onnx stem>.<precision>.plan`` / ``<ckpt>.plan`` when exporting);
  an ``-o`` without an engine suffix, one that cannot be written, and a plan or exported graph that would overwrite
  an input are refused before any work; ``--lowering`` / ``--saliency-precision`` are refused when nothing is
  exported (they would be ignored).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from frpt_export.onnx_meta import read_graph_facts
from frpt_export.trt_build import BatchProfile, BuildReport, build_engine
from frpt_runtime.contract import ENGINE_SUFFIXES, ONNX_SUFFIX, PLAN_SUFFIX, Lowering, Precision, is_engine_path
from frpt_runtime.errors import FrptError
from frpt_runtime.output_paths import check_output_file

if TYPE_CHECKING:  # building from an ONNX file needs no torch: the exporter is imported only to export
    from frpt_export.onnx_export import ExportReport

__all__ = ["TrtJob", "TrtJobReport", "run_trt_job"]


@dataclass(frozen=True)
class TrtJob:
    """What ``frpt-export trt`` was asked to do (see the module docstring for the rules)."""

    onnx: Path | None = None
    ckpt: Path | None = None
    fp16: bool = False
    plan: Path | None = None
    lowering: Lowering | None = None  # when exporting: default standard
    saliency_precision: Precision | None = None  # when exporting an fp16 graph: default fp32
    profile: BatchProfile = field(default_factory=BatchProfile)
    workspace_mib: int | None = None
    timing_cache: Path | None = None
    plugin_lib: Path | None = None


@dataclass(frozen=True)
class TrtJobReport:
    """The export made on the way (if any) and the build."""

    export: ExportReport | None
    build: BuildReport

    def to_dict(self) -> dict[str, Any]:
        return {"export": None if self.export is None else self.export.to_dict(), "build": self.build.to_dict()}

    def format(self) -> str:
        return "\n".join(([self.export.format()] if self.export is not None else []) + [self.build.format()])


def _refuse_bad_outputs(job: TrtJob, source: Path, target: Path, exporting: bool) -> None:
    """The plan must be an engine file that can be written and overwrites no input; nor may the exported graph."""
    if not is_engine_path(target):
        raise FrptError(f"-o/--out {target} must name an engine file ({', '.join(ENGINE_SUFFIXES)})")
    check_output_file(target, "-o/--out")
    for given in (job.onnx, job.ckpt):
        for written in (target, source) if exporting else (target,):
            if given is not None and written.resolve() == given.resolve():
                what = "-o/--out" if written == target else "the exported graph"
                raise FrptError(f"{what} {written} would overwrite the input {given}: choose another -o/--out")


def _source_and_target(job: TrtJob) -> tuple[Path, Path, Precision | None]:
    """``(graph to build, plan to write, precision to export first or None)``, refused before any work if unusable."""
    if job.onnx is None and job.ckpt is None:
        raise FrptError("give --onnx GRAPH or --ckpt CHECKPOINT")
    graph_precision = None if job.onnx is None else read_graph_facts(job.onnx).metadata.precision
    wanted = Precision.fp16 if job.fp16 else (graph_precision or Precision.fp32)
    if job.onnx is not None and graph_precision == wanted:
        if job.lowering is not None or job.saliency_precision is not None:
            raise FrptError(
                f"--lowering / --saliency-precision apply when exporting from --ckpt; {job.onnx} is built as it is"
            )
        source, target, export = job.onnx, job.plan or job.onnx.with_suffix(PLAN_SUFFIX), None
    elif job.ckpt is None:
        raise FrptError(
            f"{job.onnx} is the {graph_precision} graph: pass --ckpt to export the {wanted} graph on the fly, "
            f"or run `frpt-export onnx --precision {wanted}`"
        )
    else:
        default = (
            job.ckpt.with_suffix(PLAN_SUFFIX) if job.onnx is None else job.onnx.with_suffix(f".{wanted}{PLAN_SUFFIX}")
        )
        target = job.plan or default
        source, export = target.with_suffix(ONNX_SUFFIX), wanted
    _refuse_bad_outputs(job, source, target, export is not None)
    return source, target, export


def run_trt_job(job: TrtJob, log=print) -> TrtJobReport:
    """Export (if needed) and build the engine of ``job``.

    Args:
        job: the request.
        log: where progress lines go (the CLI passes a stderr writer).

    Raises:
        FrptError: bad combination of options, an input that would be overwritten, an export that fails parity,
            or any build error of :func:`~frpt_export.trt_build.build_engine`.
    """
    source, target, export_precision = _source_and_target(job)
    report = None
    if export_precision is not None:
        from frpt_export.graph import LowerOptions
        from frpt_export.onnx_export import export_onnx

        options = LowerOptions(
            job.lowering or Lowering.standard, export_precision, job.saliency_precision or Precision.fp32
        )
        log(f"exporting {job.ckpt} -> {source} ({options.lowering} lowering, {options.precision}) ...")
        report = export_onnx(job.ckpt, source, options)
        if not report:
            raise FrptError(
                f"the exported {export_precision} graph fails parity in ONNX Runtime; not building an engine"
            )
    p = job.profile
    log(f"building {target} from {source} (batch {p.min_batch}/{p.opt_batch}/{p.max_batch}) ...")
    build = build_engine(source, target, job.profile, job.workspace_mib, job.timing_cache, job.plugin_lib)
    return TrtJobReport(report, build)
