"""Torch-free runtime: backends, image pipeline, batched embedding, verification (imports as ``frpt_runtime``)."""
