"""Pinned pre-trained weights and datasets: declared once, verified, cached, prefetchable.

Lessons call the loaders; instructors use the command line (``python -m labkit assets``).
See ``registry.py`` for the list and ``data/README.md`` for sources and licences.
"""

from labkit.assets.download import ChecksumMismatch, DownloadError
from labkit.assets.loaders import (AssetMissing, dataset_path, ensure, has_random_weights,
                                   load_text_model, load_vision_model, vision_architecture)
from labkit.assets.registry import REGISTRY, Dataset, Remote, TextModel, VisionWeights, get_asset
from labkit.assets.standin import show_banner, standin_mode, standin_tokenizer

__all__ = ["REGISTRY", "VisionWeights", "TextModel", "Dataset", "Remote", "get_asset",
           "load_vision_model", "vision_architecture", "has_random_weights", "load_text_model", "dataset_path", "ensure", "AssetMissing",
           "DownloadError", "ChecksumMismatch", "standin_mode", "show_banner", "standin_tokenizer"]
