"""The driver of ``frpt-embed --ray ADDRESS``: plan, probe, stream the shards through Ray Data, write, merge.

1. Scan the folder as ``frpt-embed`` does (:func:`frpt_runtime.embed_run.scan_for_run`: the same discovery, symlink
   policy and names, every skipped candidate listed) and check the options before connecting (same one-line errors).
2. Connect to Ray (``ray.init(address=ADDRESS)``: ``auto`` = ``RAY_ADDRESS`` or the cluster ``ray start`` runs here,
   ``local`` = a fresh one on this machine, ``ray://HEAD:10001`` = Ray Client, ``HEAD:6379``); a process that has
   called ``ray.init`` already runs in that session. Plan the resources (:mod:`~.resources`).
3. Probe the model on a worker with an actor's resources: its :class:`~frpt_runtime.backends.base.ModelInfo` (what
   the manifest records), the batch check, and ``--verify``'s parity proof on the box that will embed.
4. Lock ``OUT`` for the rest of the run (:class:`~frpt_runtime.out_lock.OutputLock`, ``frpt-embed``'s lock: the
   driver is the only writer of ``OUT``) and open the shard state: ``frpt-embed``'s fingerprint plus the shard size;
   ``--resume`` keeps every shard file that reads back and matches, and refuses a different file list or model, or
   a finished file changed since, as ``frpt-embed`` does.
5. Stream the missing chunks: decode tasks -> actor pool (:mod:`~.stages`); each shard is written atomically as soon
   as all its chunks are in. Ray retries tasks and actors whose process died (at most :data:`RAY_RETRIES` times per
   chunk); a chunk whose stage raised is re-sent in a further pass, up to :data:`ATTEMPTS` passes, after which its
   shard is reported and the run exits non-zero with the finished shards kept for ``--resume``.
6. Merge: the chunks read back from the shards are committed by :func:`frpt_runtime.embed_run.commit`,
   ``frpt-embed``'s own commit (``embeddings.npy``, ``run.json``, ``manifest.json`` last with the embeddings' sha256,
   so :func:`~frpt_runtime.manifest.read_embeddings` reads it), then the shards are removed; or, with
   ``--no-merge``, the shards stay and ``manifest.json`` lists them.

Ray is imported here only, inside the functions that need it.
"""

from __future__ import annotations

import importlib
import json
import logging
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from frpt_runtime.backends.base import ModelInfo
from frpt_runtime.devices import parse_device
from frpt_runtime.distributed.layout import DEFAULT_SHARD_FILES, ShardLayout
from frpt_runtime.distributed.resources import NodeResources, ResourcePlan, plan_resources
from frpt_runtime.distributed.shard_files import SHARDS_DIR, ShardChunk, discard_shards
from frpt_runtime.distributed.shard_run import ShardRun, open_shards, write_unmerged
from frpt_runtime.distributed.stages import (
    BackendSpec,
    EmbedChunks,
    ProbeResult,
    decode_chunk,
    model_facts,
    probe_model,
)
from frpt_runtime.embed import EmbedReport, progress_bar
from frpt_runtime.embed_job import EmbedJob, EmbedJobReport
from frpt_runtime.embed_run import EmbedRun, check_embedded, commit, scan_for_run
from frpt_runtime.errors import FrptError
from frpt_runtime.image_files import printable
from frpt_runtime.manifest import remove_stale_outputs
from frpt_runtime.out_lock import OutputLock
from frpt_runtime.parity import ParityReport

__all__ = ["ATTEMPTS", "RAY_RETRIES", "RayEmbedReport", "run_ray_embed_job"]

ATTEMPTS = 3  # passes over a chunk whose stage raised, before its shard is reported as failed
RAY_RETRIES = 3  # Ray's retries of one chunk whose task or actor process died


@dataclass
class RayEmbedReport(EmbedReport):
    """:class:`~frpt_runtime.embed.EmbedReport` of a ``--ray`` run, plus where and how it ran.

    Attributes:
        merged: ``embeddings.npy`` + ``manifest.json`` were written (``False``: ``--no-merge``, shards listed).
        shards, shards_resumed: shards of the run, and those found finished by an earlier run.
        nodes, actors: alive Ray nodes and embedding actors.
        startup_s: seconds from the call to a probed model (Ray connection or start-up included).
    """

    merged: bool = True
    shards: int = 0
    shards_resumed: int = 0
    nodes: int = 0
    actors: int = 0
    startup_s: float = 0.0

    def format(self) -> str:
        lines = super().format().splitlines()
        lines[0] += f" on Ray ({self.nodes} nodes, {self.actors} actors, start-up {self.startup_s:.1f} s)"
        if not self.merged:
            lines[1] = f"wrote {self.shards} shards in {self.out_dir / SHARDS_DIR} and {self.manifest_path} (no merge)"
        lines.insert(2, f"shards: {self.shards}, {self.shards_resumed} finished by an earlier run")
        return "\n".join(lines)


def run_ray_embed_job(job: EmbedJob) -> EmbedJobReport:
    """Run ``job`` (``job.ray`` set) on a Ray cluster; see the module docstring for the steps.

    Raises:
        FrptError: what ``frpt-embed`` refuses (before any work), an unreachable cluster, a cluster that cannot run
            the backend, an ``OUT`` in use by another run, a resume over another run or over changed files, shards
            that kept failing (the finished ones are kept); after the outputs are written, no file embedded.
    """
    started = time.perf_counter()
    spec = _backend_spec(job)
    scan = scan_for_run(job.images_dir, job.out, job.workers, job.follow_symlinks)
    layout = ShardLayout(len(scan.files), job.batch_size, job.shard_size or DEFAULT_SHARD_FILES)
    with _ray_session(str(job.ray)) as ray:
        nodes = [
            NodeResources(node["Resources"].get("CPU", 0.0), node["Resources"].get("GPU", 0.0))
            for node in ray.nodes()
            if node["Alive"]
        ]
        plan = plan_resources(nodes, spec.uses_gpu)
        info, parity = _probe(ray, spec, plan, job)
        startup = time.perf_counter() - started
        if parity is not None and not parity:
            return EmbedJobReport(parity, None)
        run = EmbedRun(scan, info, job.out, job.batch_size, job.workers, job.follow_symlinks)
        job.out.mkdir(parents=True, exist_ok=True)
        with OutputLock(job.out):
            remove_stale_outputs(job.out)
            shards = open_shards(run, layout, job.resume)
            resumed = set(shards.done)
            failures = _embed_missing(ray, shards, spec, plan)
            if failures:
                raise FrptError(_failure_line(shards, failures))
            facts = {"nodes": len(nodes), "actors": plan.actors, "startup_s": round(startup, 3), "shards": layout.count}
            report = _finish(shards, job.merge, started, resumed, {**facts, **plan.to_dict()})
    check_embedded(run, report.count, report.skipped)
    return EmbedJobReport(parity, report)


def _backend_spec(job: EmbedJob) -> BackendSpec:
    """The backend options with absolute paths (the workers' working folders differ), checked here first."""
    spec = BackendSpec(
        None if job.onnx is None else job.onnx.absolute(),
        None if job.engine is None else job.engine.absolute(),
        job.providers,
        job.device,
        None if job.plugin_lib is None else job.plugin_lib.absolute(),
    )
    spec.create()  # frpt-embed's one-line errors (one model, suffixes, options that do not apply) before Ray starts
    if parse_device(job.device).index not in (None, 0):
        raise FrptError(
            f"--device {job.device} with --ray: Ray gives each actor its own GPU (cuda:0 inside it): pass --device cuda"
        )
    return spec


@contextmanager
def _ray_session(address: str) -> Iterator[Any]:
    """The ``ray`` module, connected (a session this process opened already is used as it is, and kept)."""
    ray = importlib.import_module("ray")
    importlib.import_module("ray.data")
    if ray.is_initialized():
        yield ray
        return
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "progress bars disabled": by us
    options = {"include_dashboard": False} if address == "local" else {}
    try:
        ray.init(address=address, logging_level=logging.WARNING, **options)
    except ConnectionError as exc:
        raise FrptError(
            f"cannot reach a Ray cluster at {address!r} ({' '.join(str(exc).split())}): start one with "
            "`ray start --head`, set RAY_ADDRESS and pass --ray auto, or pass --ray local"
        ) from None
    try:
        yield ray
    finally:
        ray.shutdown()


def _probe(ray: Any, spec: BackendSpec, plan: ResourcePlan, job: EmbedJob) -> tuple[ModelInfo, ParityReport | None]:
    """:func:`~.stages.probe_model` on a worker with an actor's resources: the model's info and ``--verify``'s report.

    Raises:
        FrptError: the model cannot run there (the worker's one-line reason).
    """
    bundle = None if job.bundle is None else job.bundle.absolute()
    task = ray.remote(probe_model).options(num_cpus=plan.actor_cpus, num_gpus=plan.actor_gpus)
    result: ProbeResult = ray.get(task.remote(spec, job.batch_size, job.verify, bundle))
    if result.info is None:
        raise FrptError(str(result.problem))
    return result.info, result.parity


def _embed_missing(ray: Any, shards: ShardRun, spec: BackendSpec, plan: ResourcePlan) -> dict[int, str]:
    """Embed every chunk of the unfinished shards, in up to :data:`ATTEMPTS` passes; return the failed chunks."""
    layout = shards.layout
    held: dict[int, dict[int, ShardChunk]] = {}  # chunks of shards not complete yet
    failures: dict[int, str] = {}
    bar = progress_bar(layout.total, sum(len(layout.files(s)) for s in shards.done), None)
    try:
        for _ in range(ATTEMPTS):
            chunks = [
                chunk
                for shard in range(layout.count)
                if shard not in shards.done
                for chunk in layout.chunks(shard)
                if chunk not in held.get(shard, {})
            ]
            if not chunks:
                return {}
            failures = _run_pass(ray, shards, chunks, spec, plan, held, bar)
    finally:
        bar.close()
    return failures


def _run_pass(
    ray: Any,
    shards: ShardRun,
    chunks: list[int],
    spec: BackendSpec,
    plan: ResourcePlan,
    held: dict[int, dict[int, ShardChunk]],
    bar: Any,
) -> dict[int, str]:
    """One Ray Data execution over ``chunks``; write each shard as it completes; return the chunks that failed."""
    layout, failures, seen = shards.layout, {}, set()
    rows = _dataset(ray, shards, chunks, spec, plan).iter_rows()
    try:
        for row in rows:
            seen.add(row["chunk"])
            if row["error"]:
                failures[row["chunk"]] = row["error"]
                continue
            shard = row["shard"]
            held.setdefault(shard, {})[row["chunk"]] = shards.chunk(row)
            bar.update(len(layout.chunk_files(row["chunk"])))
            if len(held[shard]) == len(layout.chunks(shard)):
                complete = held.pop(shard)
                shards.write(shard, [complete[chunk] for chunk in layout.chunks(shard)])
    except ray.exceptions.RayError as exc:  # the execution itself broke: every chunk not back yet is retried
        lines = [line for line in str(exc).splitlines() if line.strip()]
        reason = f"{type(exc).__name__}: {lines[-1] if lines else ''}".strip()
        failures.update({chunk: reason for chunk in chunks if chunk not in seen})
    lost = "its Ray task failed repeatedly (the worker died; see the Ray logs)"
    failures.update({chunk: lost for chunk in chunks if chunk not in seen and chunk not in failures})
    return failures


def _dataset(ray: Any, shards: ShardRun, chunks: list[int], spec: BackendSpec, plan: ResourcePlan) -> Any:
    """The Ray Data pipeline: one row (and block) per chunk -> decode tasks -> the embedding actor pool.

    The workers get absolute paths (their working folders differ), JSON-escaped (a non-UTF-8 name's surrogates
    survive the trip and name the same bytes there).
    """
    from ray.data import ActorPoolStrategy

    files = shards.run.scan.files
    items = [
        {
            "shard": shards.layout.shard_of(chunk),
            "chunk": chunk,
            "paths": json.dumps([str(files[i].path.absolute()) for i in shards.layout.chunk_files(chunk)]),
        }
        for chunk in chunks
    ]
    dataset = ray.data.from_items(items, override_num_blocks=len(items))
    context = dataset.context
    context.max_errored_blocks = -1  # a chunk whose task keeps dying is reported by the driver, the rest goes on
    context.enable_progress_bars = False  # Ray Data draws them on stdout; frpt-embed's own bar is on stderr
    context.print_on_execution_start = False
    info = shards.run.info
    with warnings.catch_warnings():
        # Ray Data 2.60 bounds the retries of a dead task or actor only through ray_remote_args_fn, deprecated for
        # 2.64 with no replacement yet; without it a chunk that kills its process every time would retry forever.
        warnings.simplefilter("ignore", DeprecationWarning)
        decoded = dataset.map(
            decode_chunk,
            fn_kwargs={"config": info.config, "workers": shards.run.workers},
            num_cpus=plan.decode_cpus,
            ray_remote_args_fn=_task_options,
        )
        return decoded.map(
            EmbedChunks,
            fn_constructor_kwargs={"spec": spec, "batch": shards.layout.batch, "facts": model_facts(info)},
            compute=ActorPoolStrategy(size=min(plan.actors, len(chunks))),  # a retry pass may hold one chunk
            num_cpus=plan.actor_cpus,
            num_gpus=plan.actor_gpus or None,
            ray_remote_args_fn=_actor_options,
        )


def _task_options() -> dict[str, Any]:
    return {"max_retries": RAY_RETRIES}


def _actor_options() -> dict[str, Any]:
    return {"max_restarts": -1, "max_task_retries": RAY_RETRIES}


def _failure_line(shards: ShardRun, failures: dict[int, str]) -> str:
    layout = shards.layout
    failed = {layout.shard_of(chunk) for chunk in failures}
    chunk, reason = min(failures.items())
    first = printable(shards.run.names[layout.chunk_files(chunk).start])
    return (
        f"{len(failed)} of {layout.count} shards failed {ATTEMPTS} times (shard {layout.shard_of(chunk)}, the chunk "
        f"from {first}: {printable(reason)}); the {len(shards.done)} finished shards are kept in {shards.folder}: "
        "fix the cause and rerun with --resume"
    )


def _finish(shards: ShardRun, merge: bool, started: float, resumed: set[int], facts: dict[str, Any]) -> RayEmbedReport:
    """Commit ``frpt-embed``'s outputs and remove the shards (or list them with ``--no-merge``); the report."""
    chunks = shards.all_chunks()
    records = [chunk.record for chunk in chunks]
    info = shards.run.info
    rows = np.concatenate([chunk.rows for chunk in chunks]) if chunks else np.empty((0, info.embedding_dim), np.float32)
    resumed_files = sum(len(shards.layout.files(shard)) for shard in resumed)
    if merge:
        skipped, wall = commit(shards.run, records, rows, started, resumed_files, ray=facts)
        discard_shards(shards.folder)
    else:
        skipped, wall = write_unmerged(shards, records, started, resumed_files, {"ray": facts})
    processed = shards.layout.total - resumed_files
    return RayEmbedReport(
        out_dir=shards.run.out,
        count=rows.shape[0],
        skipped=skipped,
        embedding_dim=info.embedding_dim,
        backend=info.backend,
        precision=str(info.precision),
        resumed_images=resumed_files,
        wall_s=wall,
        images_per_s=processed / wall if processed else None,
        merged=merge,
        shards=shards.layout.count,
        shards_resumed=len(resumed),
        nodes=facts["nodes"],
        actors=facts["actors"],
        startup_s=facts["startup_s"],
    )
