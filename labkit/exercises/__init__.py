"""Checkers for the lessons' code exercises, by topic. A quiz bank names this module (``checkers:
labkit.exercises``) and a key of ``CHECKERS`` (``checker: vgg_block``) for each exercise."""

from labkit.exercises import architectures, bert, choosing_a_model, transfer_learning

CHECKERS = {
    "pretrained_frozen": transfer_learning.check_pretrained_frozen,  # lesson 01
    "vgg_block": architectures.check_vgg_block,  # 02
    "residual_block": architectures.check_residual_block,  # 03
    "inception_module": architectures.check_inception_module,  # 04
    "feature_extractor": transfer_learning.check_feature_extractor,  # 05
    "fine_tuning_setup": transfer_learning.check_fine_tuning_setup,  # 06
    "seed_gaps": transfer_learning.check_seed_gaps,  # 07
    "masked_mean_pooling": bert.check_masked_mean,  # 08
    "dynamic_padding": bert.check_dynamic_padding,  # 09
    "held_out_split": choosing_a_model.check_split_halves,  # 10
    "model_choice": choosing_a_model.check_pick_model,  # 11
}
