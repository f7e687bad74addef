"""Turn a pre-trained model into one for your classes: new head, frozen backbone, and back.

The usual recipe of the course::

    from labkit.transfer import freeze_backbone, param_groups, replace_head, unfreeze
    model = replace_head(model, num_classes=3)       # fresh nn.Linear for 3 classes
    freeze_backbone(model)                           # train only the head first
    ...
    unfreeze(model, "layer4")                        # then fine-tune the last stage too
    optimizer = torch.optim.AdamW(param_groups(model, lr=1e-3))

Frozen BatchNorm is the trap here. ``requires_grad=False`` stops the optimizer from changing
a BatchNorm layer's weight and bias, but in ``model.train()`` the layer still updates its
running mean and variance from every batch it sees. Those statistics were estimated on
ImageNet's millions of images; a few batches of a small new dataset drag them somewhere else,
and the frozen backbone then gives different features at evaluation than the ones it was
trained with. So the rule in labkit is: *a BatchNorm layer with no trainable parameter stays
in eval mode*. ``freeze_backbone`` applies it, and the training loop calls ``train_mode(model)``
instead of ``model.train()`` so that it keeps holding after every evaluation.
"""

from __future__ import annotations

import html
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from torch import Tensor, nn
from torchvision import models
from torchvision.models.googlenet import GoogLeNetOutputs
from torchvision.models.inception import InceptionOutputs

__all__ = ["replace_head", "swap_head", "head_modules", "freeze_backbone", "train_mode", "unfreeze",
           "ParameterTable", "parameter_table", "param_groups", "aux_loss"]

SUPPORTED = ("torchvision VGG, ResNet (also ResNeXt and Wide ResNet), GoogLeNet, Inception v3, "
             "MobileNetV2, MobileNetV3 and EfficientNet, timm EfficientNet, Hugging Face "
             "*ForSequenceClassification models, and any model class with a head_names "
             "attribute (a tuple of qualified layer names, main head first)")
# Where a Hugging Face sequence classifier keeps its final nn.Linear, by architecture:
# BERT and DistilBERT "classifier", GPT-2 and Llama "score", RoBERTa "classifier.out_proj".
HF_HEAD_NAMES = ("classifier", "score", "classifier.out_proj")


# --- finding the head -------------------------------------------------------------------


def _is_sequence_classifier(model: nn.Module) -> bool:
    # A model can only be a transformers model if transformers is already imported, so
    # looking in sys.modules spares torchvision-only lessons the import.
    transformers = sys.modules.get("transformers")
    return (transformers is not None and isinstance(model, transformers.PreTrainedModel)
            and type(model).__name__.endswith("ForSequenceClassification"))


def _last_index(model: nn.Module, name: str) -> str:
    """Qualified name of the last layer of the nn.Sequential ``name``: "classifier.6"."""
    return f"{name}.{len(model.get_submodule(name)) - 1}"


def _head_names(model: nn.Module) -> list[str]:
    """Qualified names of the head layers, main head first, then any auxiliary heads."""
    declared = getattr(type(model), "head_names", None)  # a model may say where its head is
    if declared:
        return list(declared)
    if isinstance(model, (models.VGG, models.MobileNetV2, models.MobileNetV3,
                          models.EfficientNet)):
        return [_last_index(model, "classifier")]
    if isinstance(model, models.ResNet):
        return ["fc"]
    timm = sys.modules.get("timm")  # EfficientNet-Lite0, the course's pip-installed model
    if timm is not None and isinstance(model, timm.models.efficientnet.EfficientNet):
        return ["classifier"]
    if isinstance(model, models.GoogLeNet):
        aux = [f"{name}.fc2" for name in ("aux1", "aux2") if getattr(model, name, None) is not None]
        return ["fc", *aux]
    if isinstance(model, models.Inception3):
        return ["fc"] + (["AuxLogits.fc"] if model.AuxLogits is not None else [])
    if _is_sequence_classifier(model):
        for name in HF_HEAD_NAMES:
            try:
                if isinstance(model.get_submodule(name), nn.Linear):
                    return [name]
            except AttributeError:
                continue
        raise TypeError(
            f"{type(model).__name__} has no nn.Linear head at any of {', '.join(HF_HEAD_NAMES)}. "
            f"Fix: print(model) to find its last layer and replace it yourself: "
            f"model.<name> = nn.Linear(in_features, num_classes).")
    raise TypeError(
        f"labkit does not know where the head of a {type(model).__name__} is; it knows "
        f"{SUPPORTED}. Fix: print(model) to find its last layer and replace it yourself: "
        f"model.<name> = nn.Linear(in_features, num_classes).")


def head_modules(model: nn.Module) -> dict[str, nn.Module]:
    """Qualified name -> head module: the main head first, then any auxiliary heads."""
    return {name: model.get_submodule(name) for name in _head_names(model)}


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent), child, module)  # "3" works for nn.Sequential too


def swap_head(model: nn.Module, new: nn.Module) -> nn.Module:
    """Put ``new`` where the model's main head is, in place, and return the layer it replaced.

    ``head = swap_head(model, nn.Identity())`` turns a classifier into its backbone: it then
    returns the (B, D) features its head used to read, ready for ``extract_features``.
    ``swap_head(model, head)`` puts a head back. Auxiliary heads stay.
    """
    if not isinstance(new, nn.Module):
        raise TypeError(f"swap_head puts a module in the head's place, got a "
                        f"{type(new).__name__}. Fix: pass a module, e.g. nn.Identity() to "
                        f"get features, or nn.Linear(in_features, num_classes).")
    name, old = next(iter(head_modules(model).items()))
    _set_submodule(model, name, new)
    return old


def replace_head(model: nn.Module, num_classes: int) -> nn.Module:
    """Give the model fresh, randomly initialised head layer(s) for ``num_classes`` classes.

    Works in place and returns the model. Auxiliary heads (GoogLeNet, Inception v3) are
    replaced too: their outputs enter the training loss (see ``aux_loss``), so they must
    have the same classes. The new layers sit on the old ones' device and dtype, so this
    can be called before or after ``model.to(device)``.
    """
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
        raise ValueError(
            f"num_classes must be a whole number of at least 2, got {num_classes!r}; a "
            f"classifier needs at least two classes. Fix: pass the number of classes in your "
            f"dataset, e.g. len(train_dataset.classes); for a yes/no task use 2.")
    heads = head_modules(model)
    for name, old in heads.items():  # check all of them before changing anything
        if not isinstance(old, nn.Linear):
            raise TypeError(
                f"model.{name} is a {type(old).__name__}, not an nn.Linear, so labkit cannot "
                f"tell its input size. Fix: set it yourself: "
                f"model.{name} = nn.Linear(in_features, {num_classes}).")
    for name, old in heads.items():
        new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None,
                        device=old.weight.device, dtype=old.weight.dtype)
        _set_submodule(model, name, new)
    if _is_sequence_classifier(model):
        # The model reads num_labels to pick its loss and to size its outputs.
        model.config.num_labels = num_classes
        if hasattr(model, "num_labels"):
            model.num_labels = num_classes
    return model


# --- freezing and unfreezing --------------------------------------------------------------


def _frozen_batchnorms(model: nn.Module) -> Iterator[nn.Module]:
    """BatchNorm layers whose parameters are all frozen (layers without any are not)."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            params = list(module.parameters())
            if params and not any(p.requires_grad for p in params):
                yield module


def freeze_backbone(model: nn.Module) -> nn.Module:
    """Make only the head(s) trainable; frozen BatchNorm layers go to eval mode (see above)."""
    heads = head_modules(model)
    model.requires_grad_(False)
    for head in heads.values():
        head.requires_grad_(True)
    for batchnorm in _frozen_batchnorms(model):
        batchnorm.eval()
    return model


def train_mode(model: nn.Module) -> nn.Module:
    """``model.train()``, except that a BatchNorm layer with no trainable parameter stays in
    eval mode and so keeps its pre-trained running statistics. Call it instead of model.train()."""
    model.train()
    for batchnorm in _frozen_batchnorms(model):
        batchnorm.eval()
    return model


def unfreeze(model: nn.Module, *stages: str) -> nn.Module:
    """Make parameters trainable again: all of them, or those of the named stages.

    A stage is a module's qualified name as ``model.named_modules()`` spells it: a top-level
    child ("layer4", "features"), or deeper ("features.28", "bert.encoder.layer.11").
    Unfrozen BatchNorm layers train again at the next ``train_mode(model)``.
    """
    if not stages:
        return model.requires_grad_(True)
    known = {name for name, _ in model.named_modules()}
    known |= {name for name, _ in model.named_parameters(remove_duplicate=False)}
    for stage in stages:  # check all of them before changing anything
        if not isinstance(stage, str):
            raise TypeError(
                f"unfreeze takes stage names as separate strings, got {stage!r}. "
                f"Fix: unfreeze(model, 'layer3', 'layer4'), or unfreeze(model, *names).")
        if stage not in known:
            top = [name for name, _ in model.named_children()]
            raise ValueError(
                f"{type(model).__name__} has no stage named {stage!r}; its top-level stages are "
                f"{', '.join(top)}. Fix: use one of these names, or a dotted name from "
                f"[name for name, _ in model.named_modules()].")
    for name, param in model.named_parameters(remove_duplicate=False):
        if any(name == stage or name.startswith(stage + ".") for stage in stages):
            param.requires_grad_(True)
    return model


# --- counting parameters ------------------------------------------------------------------


def _top_level_groups(model: nn.Module) -> list[tuple[str, list[nn.Parameter]]]:
    """(top-level child name, its parameters) in model order; a parameter shared between
    children belongs to the first. Parameters set on the model itself come first, as "(root)"."""
    seen: set[int] = set()
    groups = []
    named = [("(root)", model.parameters(recurse=False)), *(
        (name, child.parameters()) for name, child in model.named_children())]
    for name, params in named:
        fresh = [p for p in params if id(p) not in seen]
        seen.update(id(p) for p in fresh)
        if fresh:
            groups.append((name, fresh))
    return groups


@dataclass
class ParameterTable:
    """Parameters per top-level child: rows of (name, total, trainable). Children without
    parameters (ReLU, pooling) have no row."""

    rows: list[tuple[str, int, int]]

    @property
    def total(self) -> int:
        return sum(row[1] for row in self.rows)

    @property
    def trainable(self) -> int:
        return sum(row[2] for row in self.rows)

    def __str__(self) -> str:
        rows = [(name, f"{total:,}", f"{trainable:,}") for name, total, trainable in self.rows]
        rows.append(("total", f"{self.total:,}", f"{self.trainable:,}"))
        header = ("module", "parameters", "trainable")
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(3)]
        lines = [f"{a:<{widths[0]}}  {b:>{widths[1]}}  {c:>{widths[2]}}" for a, b, c in
                 [header, *rows]]
        lines.insert(1, "-" * len(lines[0]))
        lines.insert(len(lines) - 1, "-" * len(lines[0]))
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        def row(name: str, total: int, trainable: int, cell: str = "td") -> str:
            return (f"<tr><{cell} style='text-align:left'>{html.escape(name)}</{cell}>"
                    f"<{cell}>{total:,}</{cell}><{cell}>{trainable:,}</{cell}></tr>")
        body = "".join(row(*r) for r in self.rows)
        return ("<table class='lk-param-table'><thead><tr><th style='text-align:left'>module"
                "</th><th>parameters</th><th>trainable</th></tr></thead>"
                f"<tbody>{body}</tbody>"
                f"<tfoot>{row('total', self.total, self.trainable, 'th')}</tfoot></table>")


def parameter_table(model: nn.Module) -> ParameterTable:
    """How many parameters each top-level part of the model has, and how many will train."""
    return ParameterTable([
        (name, sum(p.numel() for p in params),
         sum(p.numel() for p in params if p.requires_grad))
        for name, params in _top_level_groups(model)])


# --- optimizer groups and the loss -----------------------------------------------------------


def param_groups(model: nn.Module, lr: float, *, decay: float = 0.1) -> list[dict]:
    """Optimizer parameter groups with discriminative learning rates, for fine-tuning.

    The head learns at ``lr``; each earlier top-level stage with trainable parameters gets
    ``decay`` times the learning rate of the stage after it, because early layers hold
    general features that should move least. Auxiliary heads are new layers too and also
    get ``lr``. Frozen parameters are left out. Use as
    ``torch.optim.AdamW(param_groups(model, 1e-3))``.
    """
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
        raise ValueError(f"lr must be a positive number, got {lr!r}. Fix: pass e.g. lr=1e-3.")
    if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0 < decay <= 1:
        raise ValueError(
            f"decay must be above 0 and at most 1, got {decay!r}. "
            f"Fix: use decay=0.1 (each earlier stage learns 10x slower), or 1 for one lr.")
    head_children = {name.split(".")[0] for name in _head_names(model)}
    groups, next_lr = [], lr
    for name, params in reversed(_top_level_groups(model)):  # from the output backwards
        trainable = [p for p in params if p.requires_grad]
        if not trainable:
            continue
        if name in head_children:
            group_lr = lr
        else:
            next_lr *= decay
            group_lr = next_lr
        groups.append({"params": trainable, "lr": group_lr, "name": name})
    if not groups:
        raise ValueError(
            f"{type(model).__name__} has no trainable parameter, so there is nothing to optimise. "
            f"Fix: call replace_head(model, num_classes) or unfreeze(model, ...) first.")
    return groups[::-1]


def aux_loss(outputs, targets: Tensor, loss_fn: Callable[[Tensor, Tensor], Tensor],
             aux_weight: float = 0.4) -> tuple[Tensor, Tensor]:
    """(loss, logits) for any model output the course meets.

    In train mode GoogLeNet and Inception v3 also return auxiliary logits from the middle
    of the network; adding their loss, weighted by ``aux_weight``, sends a training signal
    directly into the middle layers. 0.4 is the usual convention for Inception v3 (TF-slim's
    training script); the GoogLeNet paper used 0.3 per head. ``logits`` is always
    the main head's, for accuracy. A transformers output contributes its ``.logits``.
    """
    if isinstance(outputs, InceptionOutputs):
        logits, aux = outputs.logits, [outputs.aux_logits]
    elif isinstance(outputs, GoogLeNetOutputs):
        logits, aux = outputs.logits, [outputs.aux_logits2, outputs.aux_logits1]
    elif isinstance(outputs, Tensor):
        logits, aux = outputs, []
    elif isinstance(getattr(outputs, "logits", None), Tensor):
        logits, aux = outputs.logits, []
    else:
        raise TypeError(
            f"aux_loss expected logits (a tensor) or a model output with .logits, got a "
            f"{type(outputs).__name__}. Fix: pass the logits tensor, e.g. outputs[0] if your "
            f"model returns a tuple.")
    loss = loss_fn(logits, targets)
    for aux_logits in aux:
        if aux_logits is not None:
            loss = loss + aux_weight * loss_fn(aux_logits, targets)
    return loss, logits
