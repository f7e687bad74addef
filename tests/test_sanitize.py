"""The nbval sanitize rules mask what changes between runs, and nothing a lesson teaches."""

import re

from nbval.plugin import get_sanitize_patterns

from conftest import ROOT


def sanitize(text):
    # nbval's own parser, so the test sees the rules exactly as nbval applies them.
    rules = get_sanitize_patterns((ROOT / "tests" / "sanitize.cfg").read_text())
    assert len(rules) == 6, "a rule in sanitize.cfg is not in nbval's 'regex:/replace:' form"
    for regex, replace in rules:
        text = re.sub(regex, replace, text)
    return text


def test_run_to_run_noise_is_masked():
    run_a = ("Loaded /tmp/tmpab12cd/model.pt from /root/.cache/torch/hub in 1.25 s\n"
             "One 256x256 matrix product on cpu: 0.84 ms, about 39.9 GFLOP/s\n"
             " 45%|████▌     | 9/20 [00:03<00:04,  2.61it/s]\n"
             "labkit: using cpu (2 CPU cores, 25.3 GB)")
    run_b = ("Loaded /tmp/tmpzz99yy/model.pt from /home/ana/.cache/torch/hub in 0.98 s\n"
             "One 256x256 matrix product on cpu: 1.02 ms, about 32.1 GFLOP/s\n"
             " 50%|█████     | 10/20 [00:04<00:04,  2.47it/s]\n"
             "labkit: using cpu (2 CPU cores, 16.0 GB)")
    assert sanitize(run_a) == sanitize(run_b)


def test_results_a_lesson_states_are_kept():
    text = "accuracy 0.93 after 5 epochs; 11,176,512 parameters; top-5 error 3.57%"
    assert sanitize(text) == text
