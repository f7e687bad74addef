"""Lesson 01's exercise: turn the pre-trained shapes network into a frozen feature extractor
for the target task (pre-trained backbone, new head with the target's classes, only the head
trainable)."""

from __future__ import annotations

from typing import Any

from labkit.quiz.checkers import CheckResult, check_frozen_backbone, register_checker


def _never_trained(batchnorm) -> bool:
    # A BatchNorm layer that has never seen a batch keeps its initial statistics exactly:
    # mean 0, variance 1, and a batch counter of 0. Loaded pre-trained weights change all three.
    return (int(batchnorm.num_batches_tracked) == 0 and not batchnorm.running_mean.any()
            and bool((batchnorm.running_var == 1).all()))


@register_checker("pretrained_frozen")
def check_pretrained_frozen(model: Any, *, num_classes: int) -> CheckResult:
    """The frozen-backbone rules, plus: the backbone holds pre-trained weights, not new ones."""
    from torch import nn

    result = check_frozen_backbone(model, num_classes=num_classes)
    if not result.correct:
        return result
    batchnorms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
                  and m.track_running_stats]
    if batchnorms and all(_never_trained(m) for m in batchnorms):
        return CheckResult(False, "The backbone has fresh random weights: its BatchNorm layers "
                                  "have never seen an image. Fix: load the pre-trained weights "
                                  "first, model.load_state_dict(backbone_state), then replace the "
                                  "head and freeze the backbone.")
    return CheckResult(True, result.message.replace(
        "the backbone is frozen", "the pre-trained backbone is frozen"))
