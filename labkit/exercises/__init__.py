"""Checkers for the lessons' code exercises, one module per lesson topic. A quiz bank names
this module (``checkers: labkit.exercises``) and a checker in ``CHECKERS`` (``checker:
vgg_block``); a checker grades the learner's answer, naming the mistake and the fix."""

from labkit.exercises import (bert, choosing_a_model, feature_extraction, fine_tuning, inception,
                              resnet, transfer_learning, vgg)

CHECKERS = {
    "pretrained_frozen": transfer_learning.check_pretrained_frozen,  # lesson 01
    "vgg_block": vgg.check_vgg_block,  # 02
    "residual_block": resnet.check_residual_block,  # 03
    "inception_module": inception.check_inception_module,  # 04
    "feature_extractor": feature_extraction.check_feature_extractor,  # 05
    "fine_tuning_setup": fine_tuning.check_fine_tuning_setup,  # 06
    "seed_gaps": fine_tuning.check_seed_gaps,  # 07
    "masked_mean_pooling": bert.check_masked_mean,  # 08
    "dynamic_padding": bert.check_dynamic_padding,  # 09
    "held_out_split": choosing_a_model.check_split_halves,  # 10
    "model_choice": choosing_a_model.check_pick_model,  # 11
}
