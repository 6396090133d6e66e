"""Deterministic shards of a run's sorted file list: a function of the list length and the batch size alone.

Chunk ``k`` is files ``[k*B, (k+1)*B)`` — the chunks (and so the model batches) of ``frpt-embed`` itself. A shard is
``C = ceil(shard_files / B)`` consecutive chunks: shard ``s`` holds chunks ``[s*C, (s+1)*C)``, files
``[s*C*B, (s+1)*C*B)`` (the last shard and its last chunk may be shorter). Nothing depends on timing, the cluster,
or which files fail to decode, so a resumed run finds every shard where the first run put it.
"""

from __future__ import annotations

from dataclasses import dataclass

from frpt_runtime.errors import FrptError

__all__ = ["DEFAULT_SHARD_FILES", "ShardLayout"]

DEFAULT_SHARD_FILES = 4096


@dataclass(frozen=True)
class ShardLayout:
    """Where every file, chunk and shard of a run lies.

    Attributes:
        total: files in the run's sorted list.
        batch: files per chunk ``B`` (``--batch-size``).
        shard_files: requested files per shard (``--shard-size``), rounded up to whole chunks.
    """

    total: int
    batch: int
    shard_files: int = DEFAULT_SHARD_FILES

    def __post_init__(self) -> None:
        if self.batch < 1:
            raise FrptError(f"--batch-size must be >= 1, got {self.batch}")
        if self.shard_files < 1:
            raise FrptError(f"--shard-size must be >= 1, got {self.shard_files}")

    @property
    def chunks_per_shard(self) -> int:
        return -(-self.shard_files // self.batch)

    @property
    def files_per_shard(self) -> int:
        return self.chunks_per_shard * self.batch

    @property
    def count(self) -> int:
        """Number of shards."""
        return -(-self.total // self.files_per_shard)

    def files(self, shard: int) -> range:
        """Positions (in the sorted list) of shard ``shard``'s files."""
        start = shard * self.files_per_shard
        return range(start, min(start + self.files_per_shard, self.total))

    def chunks(self, shard: int) -> range:
        """Chunk numbers of shard ``shard``."""
        files = self.files(shard)
        return range(files.start // self.batch, -(-files.stop // self.batch))

    def chunk_files(self, chunk: int) -> range:
        """Positions of chunk ``chunk``'s files."""
        start = chunk * self.batch
        return range(start, min(start + self.batch, self.total))

    def shard_of(self, chunk: int) -> int:
        return chunk // self.chunks_per_shard

    @staticmethod
    def file_name(shard: int) -> str:
        """The shard's file name (sorted by name = shard order)."""
        return f"shard-{shard:06d}.parquet"
