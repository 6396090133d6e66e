"""``frpt-embed`` and ``frpt-verify``: thin typer front-ends over :mod:`frpt_runtime.embed` / :mod:`~.verify`.

Results go to stdout (``--json`` for machines), progress and logs to stderr. A :class:`FrptError` prints
one line on stderr and exits 2 (traceback with ``--debug``); a failed parity check exits 1.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from frpt.cli_common import EXIT_INTERRUPTED, EXIT_PARITY_FAILED, DebugOpt, JsonOpt, make_app, run_command
from frpt.errors import FrptError

__all__ = ["embed_app", "verify_app"]


OnnxOpt = Annotated[Optional[Path], typer.Option("--onnx", help="ONNX export to run with ONNX Runtime.")]
EngineOpt = Annotated[Optional[Path], typer.Option("--engine", help="TensorRT plan (sidecar <plan>.json beside it).")]
ProvidersOpt = Annotated[
    Optional[str],
    typer.Option("--providers", help="ONNX Runtime providers in priority order, comma-separated: cpu, cuda, tensorrt."),
]
DeviceOpt = Annotated[int, typer.Option("--device", help="CUDA device ordinal (GPU backends).")]
PluginOpt = Annotated[
    Optional[str], typer.Option("--plugin-lib", help="libfrpt_plugins path (default FRPT_PLUGIN_LIB).")
]
BundleOpt = Annotated[
    Optional[Path], typer.Option("--bundle", help="Reference bundle (default MODEL.ref.npz beside the model).")
]

embed_app = make_app("frpt-embed", help="Embed an image folder with a TensorRT engine or an ONNX export (no torch needed).")
EMBED_EXAMPLE = "Example: frpt-embed photos/ --onnx model.onnx --batch 32 --out emb/ --verify"
verify_app = make_app("frpt-verify", help="Prove a model's parity with PyTorch on this box from its reference bundle.")
VERIFY_EXAMPLE = "Example: frpt-verify model.plan --bundle model.ref.npz"


def _providers(text: str | None) -> list[str]:
    return [item.strip() for item in (text or "").split(",") if item.strip()]


@embed_app.command(no_args_is_help=True, epilog=EMBED_EXAMPLE)
def embed(
    images_dir: Annotated[Path, typer.Argument(help="Folder of images, walked recursively.")],
    onnx: OnnxOpt = None,
    engine: EngineOpt = None,
    batch: Annotated[int, typer.Option("--batch", help="Images per batch (<= the engine profile's max).")] = 32,
    out: Annotated[Path, typer.Option("--out", help="Output folder for embeddings.npy + manifest.json.")] = Path(
        "embeddings"
    ),
    workers: Annotated[int, typer.Option("--workers", help="Decode threads.")] = min(4, os.cpu_count() or 1),
    device: DeviceOpt = 0,
    providers: ProvidersOpt = None,
    plugin_lib: PluginOpt = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run in --out.")] = False,
    verify: Annotated[bool, typer.Option("--verify", help="First prove parity on the reference bundle.")] = False,
    bundle: BundleOpt = None,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Embed IMAGES_DIR: writes OUT/embeddings.npy (float32 [M, D]), OUT/manifest.json and OUT/run.json."""

    def body() -> int:
        from frpt_runtime.backends import create_backend
        from frpt_runtime.embed import embed_folder
        from frpt_runtime.verify import verify_model

        if not images_dir.is_dir():
            raise FrptError(f"image folder not found: {images_dir}")
        result: dict[str, object] = {}
        with create_backend(
            onnx=onnx, engine=engine, providers=_providers(providers), device=device, plugin_lib=plugin_lib
        ) as backend:
            backend.check_batch(batch)
            if verify:
                report = verify_model(backend, bundle)
                result["parity"] = report.to_dict()
                if not as_json:
                    typer.echo(report.format())
                if not report:
                    if as_json:
                        typer.echo(json.dumps(result, indent=2))
                    typer.echo("error: parity check failed: nothing embedded", err=True)
                    return EXIT_PARITY_FAILED
            try:
                done = embed_folder(images_dir, backend, out, batch=batch, workers=workers, resume=resume)
            except KeyboardInterrupt:
                typer.echo(f"interrupted: finished batches are kept in {out}; continue with --resume", err=True)
                return EXIT_INTERRUPTED
        result["embed"] = done.to_dict()
        typer.echo(json.dumps(result, indent=2) if as_json else done.format())
        return 0

    run_command(debug, body)


@verify_app.command(no_args_is_help=True, epilog=VERIFY_EXAMPLE)
def verify(
    model: Annotated[Path, typer.Argument(help="model.onnx (ONNX Runtime) or model.plan (TensorRT).")],
    bundle: BundleOpt = None,
    device: DeviceOpt = 0,
    providers: ProvidersOpt = None,
    plugin_lib: PluginOpt = None,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Run MODEL on its reference bundle and print the parity report; exit 1 when it fails."""

    def body() -> int:
        from frpt_runtime.backends import create_backend
        from frpt_runtime.verify import verify_model

        is_engine = model.suffix.lower() in (".plan", ".engine", ".trt")
        with create_backend(
            onnx=None if is_engine else model,
            engine=model if is_engine else None,
            providers=_providers(providers),
            device=device,
            plugin_lib=plugin_lib,
        ) as backend:
            report = verify_model(backend, bundle)
        typer.echo(report.to_json() if as_json else report.format())
        if not report:
            typer.echo(f"error: parity check failed: {report.failure()}", err=True)
            return EXIT_PARITY_FAILED
        return 0

    run_command(debug, body)
