"""Turn a pre-trained model into one for your classes: new head, frozen backbone, and back.
A frozen BatchNorm still updates its running statistics in ``model.train()``, so
``freeze_backbone`` and ``train_mode`` (which ``fit`` calls) keep it in eval mode."""

import sys
from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor, nn
from torchvision import models

# timm's EfficientNet, BERT and DistilBERT, GPT-2 and RoBERTa: the first that is an nn.Linear.
LINEAR_HEAD_NAMES = ("classifier", "score", "classifier.out_proj")


def _head_names(model: nn.Module) -> list[str]:
    """Qualified names of the head layers, main head first, then any auxiliary heads."""
    # A transformers or timm model means that library is imported: no import here.
    transformers, timm = sys.modules.get("transformers"), sys.modules.get("timm")
    modules = dict(model.named_modules())
    if getattr(type(model), "head_names", None):
        return list(type(model).head_names)
    if isinstance(model, (models.VGG, models.MobileNetV2, models.MobileNetV3, models.EfficientNet)):
        return [f"classifier.{len(model.classifier) - 1}"]
    if isinstance(model, (models.ResNet, models.GoogLeNet, models.Inception3)):
        aux = ("aux1.fc2", "aux2.fc2", "AuxLogits.fc")  # GoogLeNet's and Inception v3's, if on
        return ["fc"] + [name for name in aux if name in modules]
    if (transformers and isinstance(model, transformers.PreTrainedModel)) or (
            timm and isinstance(model, timm.models.efficientnet.EfficientNet)):
        found = [name for name in LINEAR_HEAD_NAMES if isinstance(modules.get(name), nn.Linear)]
        if found:
            return found[:1]
    raise TypeError(f"labkit does not know where the head of a {type(model).__name__} is (it "
                    "knows torchvision's ResNet, VGG and the like, timm's EfficientNet and "
                    "transformers' classifiers). Fix: print(model) to find its last layer and "
                    "set it: model.<name> = nn.Linear(in_features, num_classes).")


def head_modules(model: nn.Module) -> dict[str, nn.Module]:
    """Qualified name -> head module, main head first. Lesson 05."""
    return {name: model.get_submodule(name) for name in _head_names(model)}


def swap_head(model: nn.Module, new: nn.Module) -> nn.Module:
    """Put ``new`` (e.g. nn.Identity()) where the main head is; return the old head. Lesson 05."""
    if not isinstance(new, nn.Module):
        raise TypeError(f"swap_head puts a module where the head is, not a {type(new).__name__}"
                        ". Fix: pass a module, e.g. nn.Identity().")
    name, old = next(iter(head_modules(model).items()))
    model.set_submodule(name, new)
    return old


def replace_head(model: nn.Module, num_classes: int) -> nn.Module:
    """New head layer(s) for ``num_classes``, aux heads too, in place. Lesson 05."""
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
        raise ValueError(f"num_classes must be a whole number of at least 2, got "
                         f"{num_classes!r}. Fix: pass the number of classes in your dataset, "
                         f"e.g. len(train_dataset.classes); for a yes/no task use 2.")
    for name, old in head_modules(model).items():
        model.set_submodule(name, nn.Linear(old.in_features, num_classes, bias=old.bias is not None,
                                            device=old.weight.device, dtype=old.weight.dtype))
    if hasattr(model, "num_labels"):  # a transformers model sizes its loss and outputs by it
        model.config.num_labels = model.num_labels = num_classes
    return model


def train_mode(model: nn.Module) -> nn.Module:
    """``model.train()``, but BatchNorms with nothing to train stay in eval mode. Lesson 05."""
    for m in model.train().modules():
        has_weight = isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine
        if has_weight and not m.weight.requires_grad:
            m.eval()
    return model


def freeze_backbone(model: nn.Module) -> nn.Module:
    """Only the head(s) train; frozen BatchNorm layers go to eval mode. Lesson 01."""
    heads = head_modules(model)
    model.requires_grad_(False)
    for head in heads.values():
        head.requires_grad_(True)
    return train_mode(model) if model.training else model  # eval mode: they are already


def unfreeze(model: nn.Module, *stages: str) -> nn.Module:
    """Make all parameters trainable, or those of the named stages ("layer4",
    "bert.encoder.layer.11": names from ``model.named_modules()``). Lesson 06."""
    if not stages:
        return model.requires_grad_(True)
    known = {name for name, _ in [*model.named_modules(), *model.named_parameters()]}
    for stage in stages:  # check all of them before changing anything
        if not isinstance(stage, str) or stage not in known:
            top = ", ".join(name for name, _ in model.named_children())
            raise ValueError(f"{type(model).__name__} has no stage named {stage!r}; its top-level "
                             f"stages are {top}. Fix: pass each name as a string of its own, "
                             "unfreeze(model, 'layer3', 'layer4'), from these or from "
                             "[name for name, _ in model.named_modules()].")
    for name, param in model.named_parameters(remove_duplicate=False):
        if any(name == stage or name.startswith(stage + ".") for stage in stages):
            param.requires_grad_(True)
    return model


def _top_level_groups(model: nn.Module) -> list[tuple[str, list[nn.Parameter]]]:
    """(top-level child, its parameters) in order, "(root)" first; shared parameters once."""
    seen, groups = set(), []
    children = [("(root)", model.parameters(recurse=False)),
                *((name, child.parameters()) for name, child in model.named_children())]
    for name, params in children:
        fresh = [p for p in params if id(p) not in seen]
        seen.update(map(id, fresh))
        if fresh:
            groups.append((name, fresh))
    return groups


@dataclass
class ParameterTable:
    """(top-level child, parameters, trainable) rows and totals, printed as a table. Lesson 05."""

    rows: list[tuple[str, int, int]]
    total: int
    trainable: int

    def __str__(self) -> str:
        rows = [*self.rows, ("total", self.total, self.trainable)]
        return "\n".join([f"{'module':<16} {'parameters':>13} {'trainable':>13}"] + [
            f"{name:<16} {total:>13,} {trainable:>13,}" for name, total, trainable in rows])


def parameter_table(model: nn.Module) -> ParameterTable:
    """How many parameters each top-level part of the model has, and how many train. Lesson 05."""
    rows = [(name, sum(p.numel() for p in params), sum(p.numel() for p in params
                                                       if p.requires_grad))
            for name, params in _top_level_groups(model)]
    return ParameterTable(rows, sum(row[1] for row in rows), sum(row[2] for row in rows))


def param_groups(model: nn.Module, lr: float, *, decay: float = 0.1) -> list[dict]:
    """Optimizer groups with discriminative rates: the head(s) at ``lr``, each earlier stage that
    trains at ``decay`` times the next one's (early layers hold general features). Lesson 06."""
    if not (lr > 0 and 0 < decay <= 1):
        raise ValueError(f"lr={lr!r}, decay={decay!r}. Fix: a positive lr, e.g. 1e-3, and a decay "
                         "above 0 and at most 1: 0.1 (each earlier stage learns 10x slower).")
    heads = {name.split(".")[0] for name in _head_names(model)}
    groups, stage_lr = [], lr
    for name, params in reversed(_top_level_groups(model)):  # from the output backwards
        trainable = [p for p in params if p.requires_grad]
        if not trainable:
            continue
        if name not in heads:
            stage_lr *= decay
        groups.append({"params": trainable, "lr": lr if name in heads else stage_lr, "name": name})
    return groups[::-1]


def aux_loss(outputs, targets: Tensor, loss_fn: Callable[[Tensor, Tensor], Tensor],
             aux_weight: float = 0.4) -> tuple[Tensor, Tensor]:
    """(loss, logits) of logits, a ``.logits`` output, or one with aux logits, which add their
    loss times ``aux_weight`` (0.4: TF-slim's Inception v3; GoogLeNet's paper 0.3). Lesson 04."""
    logits = getattr(outputs, "logits", outputs)
    loss = loss_fn(logits, targets)
    for aux_logits in (getattr(outputs, name, None) for name in ("aux_logits", "aux_logits2",
                                                                 "aux_logits1")):
        if isinstance(aux_logits, Tensor):
            loss = loss + aux_weight * loss_fn(aux_logits, targets)
    return loss, logits
