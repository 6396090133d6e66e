"""``frpt-embed --ray``: the same embedding run spread over a Ray cluster (Ray Data), with the same outputs.

The folder is scanned as ``frpt-embed`` scans it (the same discovery, symlink policy and names; every skipped
candidate listed) and the sorted file list is cut into chunks of ``--batch-size`` files exactly as ``frpt-embed``
cuts it, and the chunks into shards of a fixed number of chunks (:mod:`~frpt_runtime.distributed.layout`): both a
function of the list and the batch size alone. Ray Data streams the chunks through decode tasks (the project's one
pipeline and decoder) into a pool of actors that each hold one backend (:mod:`~frpt_runtime.distributed.stages`),
sized so that a small cluster never starves its decode tasks (:mod:`~frpt_runtime.distributed.resources`). The
driver, holding ``OUT``'s lock for the whole run, writes every finished shard atomically as its own Parquet file
(:mod:`~frpt_runtime.distributed.shard_files`), so a killed run resumes by shard under ``frpt-embed``'s own resume
rules, and finally commits the chunks read back from the shards with ``frpt-embed``'s own commit
(:func:`frpt_runtime.embed_run.commit`): ``embeddings.npy`` and ``manifest.json`` are those of ``frpt-embed`` by
construction, and :func:`~frpt_runtime.manifest.read_embeddings` reads them. :mod:`~frpt_runtime.distributed.ray_embed`
is the driver; it alone imports Ray, and only when called.
"""
