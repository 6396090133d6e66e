"""FRPT: Fine-grained Retrieval Prompt Tuning (AAAI 2023) in PyTorch.

Importing the package stays torch-free (``frpt.config`` is read by the torch-less runtime); the model
lives in :mod:`frpt.model`, created with :func:`frpt.model.create_model`.
"""

__version__ = "0.1.0"
