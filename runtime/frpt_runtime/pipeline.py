"""Decode/resize worker pool running ahead of the accelerator through a bounded queue.

``paths`` are cut into consecutive chunks of ``batch`` files (chunk ``k`` = ``paths[k*B:(k+1)*B]``);
each chunk becomes one :class:`Batch` holding the chunk's decodable images as one uint8
``[n, S, S, 3]`` array (``n <= B``) and the chunk's bad files with their reasons. Batch boundaries
therefore depend on the file list alone, never on timing or on which files fail, so an interrupted run
resumed at chunk ``k`` feeds the model exactly the batches an uninterrupted run would.

Threads decode (PIL releases the GIL while decoding and resizing); a feeder thread keeps at most
``workers * 4`` decodes in flight and assembles chunks in order into a queue of ``depth`` batches, so
decoding overlaps the backend's copy + compute of earlier batches.

PIL's ``DecompressionBombWarning`` is silenced here, once: the decoder's own pixel budget decides which files
are too large (they are skipped and listed with the reason), so PIL's warning on stderr says nothing new.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from frpt_runtime.families import ModelConfig
from frpt_runtime.images import ImageDecodeError, load_image

__all__ = ["Batch", "BatchPipeline"]

warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


@dataclass
class Batch:
    """One chunk of the file list, decoded.

    Attributes:
        index: chunk number ``k``.
        start: position of the chunk's first file in the full path list.
        paths: the chunk's decodable files, in order (rows of ``images``).
        images: uint8 ``[len(paths), S, S, 3]``.
        skipped: ``(path, reason)`` for the chunk's files that could not be decoded.
    """

    index: int
    start: int
    paths: list[Path]
    images: np.ndarray
    skipped: list[tuple[Path, str]] = field(default_factory=list)


_DONE = object()


class BatchPipeline:
    """Iterate decoded batches of ``paths[start_chunk * batch:]``; a context manager that stops its threads.

    Args:
        paths: all files of the run, in manifest order.
        size: model input side ``S``.
        crop_pct: centre-crop fraction (see :func:`frpt_runtime.images.load_image`).
        batch: files per chunk ``B``.
        workers: decode threads.
        depth: batches decoded ahead of the consumer (bounded queue size).
        start_chunk: first chunk to produce (resume).
        decode: the per-file decoder (default :func:`load_image`); returns pixels or raises ImageDecodeError.
    """

    def __init__(
        self,
        paths: Sequence[Path],
        size: int,
        crop_pct: float,
        *,
        batch: int,
        workers: int = 4,
        depth: int = 2,
        start_chunk: int = 0,
        decode: Callable[[Path, int, float], np.ndarray] = load_image,
    ) -> None:
        if batch < 1 or workers < 1 or depth < 1:
            raise ValueError(f"need batch, workers, depth >= 1, got {batch}, {workers}, {depth}")
        self.paths = list(paths)
        self.size, self.crop_pct, self.batch = size, crop_pct, batch
        self.workers, self.depth, self.start_chunk = workers, depth, start_chunk
        self._decode = decode
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._pool: ThreadPoolExecutor | None = None
        self._feeder: threading.Thread | None = None

    @classmethod
    def for_config(
        cls, paths: Sequence[Path], config: ModelConfig, *, batch: int, workers: int = 4, start_chunk: int = 0
    ) -> BatchPipeline:
        """The pool that feeds a model of ``config``: its input size, crop and decoder (``exact`` | ``fast``)."""
        decode = partial(load_image, decoder=config.decoder)
        return cls(
            paths,
            config.input_size,
            config.crop_pct,
            batch=batch,
            workers=workers,
            start_chunk=start_chunk,
            decode=decode,
        )

    def __enter__(self) -> BatchPipeline:
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="frpt-decode")
        self._feeder = threading.Thread(target=self._feed, name="frpt-feeder", daemon=True)
        self._feeder.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the feeder and the decode threads (pending decodes are cancelled)."""
        self._stop.set()
        while self._feeder is not None and self._feeder.is_alive():
            with contextlib.suppress(queue.Empty):  # unblock a feeder waiting on a full queue
                self._queue.get(timeout=0.05)
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self._pool = self._feeder = None

    def __iter__(self) -> Iterator[Batch]:
        if self._feeder is None:
            raise RuntimeError("BatchPipeline must be used as a context manager")
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, Batch)
            yield item

    def _decode_one(self, path: Path) -> np.ndarray | str:
        try:
            return self._decode(path, self.size, self.crop_pct)
        except ImageDecodeError as exc:
            return str(exc)

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _feed(self) -> None:
        try:
            assert self._pool is not None
            first = self.start_chunk * self.batch
            window = self.workers * 4
            pending: deque[tuple[int, Path, Future[np.ndarray | str]]] = deque()
            position = first
            chunk: list[tuple[Path, np.ndarray | str]] = []
            chunk_index, chunk_start = self.start_chunk, first
            while position < len(self.paths) or pending:
                while position < len(self.paths) and len(pending) < window:
                    path = self.paths[position]
                    pending.append((position, path, self._pool.submit(self._decode_one, path)))
                    position += 1
                _, path, future = pending.popleft()
                chunk.append((path, future.result()))
                if len(chunk) == self.batch or (position == len(self.paths) and not pending):
                    if not self._put(self._assemble(chunk_index, chunk_start, chunk)):
                        return
                    chunk_index, chunk_start, chunk = chunk_index + 1, chunk_start + len(chunk), []
            self._put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer thread, which re-raises it
            self._put(exc)

    def _assemble(self, index: int, start: int, chunk: list[tuple[Path, np.ndarray | str]]) -> Batch:
        good = [(path, pixels) for path, pixels in chunk if not isinstance(pixels, str)]
        images = np.empty((len(good), self.size, self.size, 3), np.uint8)
        for row, (_, pixels) in enumerate(good):
            images[row] = pixels
        skipped = [(path, reason) for path, reason in chunk if isinstance(reason, str)]
        return Batch(index=index, start=start, paths=[path for path, _ in good], images=images, skipped=skipped)
