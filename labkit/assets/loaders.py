"""What lessons call: a pre-trained model (or dataset folder) from the cache, a download, or
a clear error; or, in stand-in mode, the same architecture with random weights and a banner.

    model, weights = load_vision_model("resnet18")      # weights.transforms(), weights.meta
    model, tokenizer = load_text_model("bert-tiny", task="sequence-classification", num_labels=2)
    root = dataset_path("hymenoptera")
"""

from __future__ import annotations

from pathlib import Path

from labkit.assets import store
from labkit.assets.download import DownloadError
from labkit.assets.registry import (Asset, Dataset, TextModel, VisionWeights, describe_size,
                                    get_asset)
from labkit.assets.standin import show_banner, standin_mode, standin_tokenizer
from labkit.config import OFFLINE_ENV, STANDIN_ENV, env_flag, hf_hub_dir

__all__ = ["AssetMissing", "ensure", "load_vision_model", "load_text_model", "dataset_path",
           "TEXT_TASKS"]


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


def _kind(name: str, expected: type):
    asset = get_asset(name)
    if not isinstance(asset, expected):
        raise TypeError(f"'{name}' is a {asset.kind}, not a {expected.kind}. "
                        "Fix: see `python -m labkit assets list` for what each name is.")
    return asset


def _standin_vision(asset: VisionWeights, weights, kwargs: dict):
    import torchvision.models

    # The pre-trained builders set these themselves; the stand-in must build the same network.
    arch = {"num_classes": len(weights.meta["categories"])}
    if asset.builder == "googlenet":
        arch |= {"transform_input": True, "aux_logits": False, "init_weights": True}
    if asset.builder == "inception_v3":
        arch |= {"transform_input": True, "aux_logits": True, "init_weights": True}
    return getattr(torchvision.models, asset.builder)(weights=None, **(arch | kwargs))


def load_vision_model(name: str, *, standin: bool | None = None, offline: bool | None = None,
                      progress: bool = True, **kwargs):
    """Return ``(model, weights)``: a torchvision model with its pinned ImageNet weights.

    ``weights`` is the enum member: ``weights.transforms()`` is the preprocessing the model
    was trained with and ``weights.meta["categories"]`` its class names, in both modes.
    ``standin`` and ``offline`` default to ``LABKIT_STANDIN`` and ``LABKIT_OFFLINE``. Extra
    keyword arguments go to the torchvision builder (for example ``aux_logits=False``).
    """
    import torchvision.models

    asset = _kind(name, VisionWeights)
    weights = asset.enum()
    if standin_mode(standin):
        model = _standin_vision(asset, weights, kwargs)
        show_banner(f"{name} ({asset.weights})")
        return model, weights
    ensure(asset, progress=progress, offline=offline)
    # The real torchvision path; it finds the verified file in $TORCH_HOME and loads it.
    return getattr(torchvision.models, asset.builder)(weights=weights, progress=False, **kwargs), weights


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

    asset = _kind(name, TextModel)
    if task not in TEXT_TASKS:
        raise ValueError(f"task={task!r} is not one of {sorted(TEXT_TASKS)}. Fix: pick one of them.")
    model_class = getattr(transformers, TEXT_TASKS[task])
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
    return ensure(_kind(name, Dataset), progress=progress, offline=offline)
