"""Pinned pre-trained weights and datasets (lesson 00): declared once in ``registry``, fetched
and checked by ``store``, loaded by ``loaders``; ``python -m labkit assets`` for instructors."""

from labkit.assets.loaders import (dataset_path, ensure, has_random_weights, load_text_model,
                                   load_vision_model, standin_tokenizer, vision_architecture)
from labkit.assets.registry import REGISTRY, Dataset, Remote, TextModel, VisionWeights, get_asset
from labkit.assets.store import AssetMissing, ChecksumMismatch, DownloadError

__all__ = ["REGISTRY", "VisionWeights", "TextModel", "Dataset", "Remote", "get_asset",
           "load_vision_model", "vision_architecture", "has_random_weights", "load_text_model",
           "dataset_path", "ensure", "AssetMissing", "DownloadError", "ChecksumMismatch",
           "standin_tokenizer"]
