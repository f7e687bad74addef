"""Checker for lesson 01 (transfer learning): the learner turns the pre-trained shapes network
into a frozen feature extractor (pre-trained backbone, a new head, only the head trains)."""

from torch import nn

from labkit.exercises.checks import Mistake, batchnorms, checker, drifting_batchnorms, require
from labkit.transfer import head_modules
from labkit.vision import count_parameters


@checker
def check_pretrained_frozen(model, *, num_classes: int) -> str:
    """The backbone holds pre-trained weights and is frozen, frozen BatchNorm stays in eval
    mode, and only the head, with ``num_classes`` outputs, trains."""
    require(isinstance(model, nn.Module), f"Expected a model (a torch.nn.Module), got a "
                                          f"{type(model).__name__}. Fix: pass the model itself.")
    try:
        name, head = next(iter(head_modules(model).items()))
    except TypeError as error:  # it says that the head was not found, and the fix
        raise Mistake(str(error)) from None
    backbone = count_parameters(model, trainable=True) - count_parameters(head, trainable=True)
    require(not backbone, f"The backbone is still trainable: {backbone:,} parameters require "
                          f"grad. Fix: freeze_backbone(model).")
    require(count_parameters(head, trainable=True) == count_parameters(head), f"The head is "
            f"frozen too, so it would not learn. Fix: model.{name}.requires_grad_(True).")
    drifting = len(drifting_batchnorms(model))
    require(not drifting, f"{drifting} frozen BatchNorm layers are in train mode, so their "
                          f"running statistics would still change. Fix: freeze_backbone(model) "
                          f"puts them in eval mode, and train_mode(model) keeps them there.")
    outputs = getattr(head, "out_features", None)
    require(outputs == num_classes, f"The head model.{name} has {outputs} outputs but the task "
            f"has {num_classes} classes. Fix: replace_head(model, num_classes={num_classes}).")
    # A BatchNorm layer that never saw a batch keeps mean 0, variance 1 and a batch count of 0.
    fresh = [int(m.num_batches_tracked) == 0 and not m.running_mean.any()
             and bool((m.running_var == 1).all())
             for m in batchnorms(model) if m.track_running_stats]
    require(not fresh or not all(fresh), "The backbone has fresh random weights: its BatchNorm "
            "layers have never seen an image. Fix: load the pre-trained weights first, "
            "model.load_state_dict(backbone_state), then replace the head and freeze the backbone.")
    return (f"Well done: the pre-trained backbone is frozen; only its head's "
            f"{count_parameters(head):,} parameters train.")
