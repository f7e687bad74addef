"""Pinned pre-trained weights and datasets: declared once (``registry``), checked, cached.

Lessons call the loaders; instructors use ``python -m labkit assets``. Sources and licences
are in ``data/README.md``.
"""

from labkit.assets.download import ChecksumMismatch, DownloadError
from labkit.assets.loaders import (AssetMissing, dataset_path, ensure, has_random_weights,
                                   load_text_model, load_vision_model, vision_architecture)
from labkit.assets.registry import REGISTRY, Dataset, Remote, TextModel, VisionWeights, get_asset

__all__ = ["REGISTRY", "VisionWeights", "TextModel", "Dataset", "Remote", "get_asset",
           "load_vision_model", "vision_architecture", "has_random_weights", "load_text_model",
           "dataset_path", "ensure", "AssetMissing", "DownloadError", "ChecksumMismatch"]
