"""Checkers for lessons 08 (BERT) and 09 (fine-tuning BERT).

- ``masked_mean_pooling`` (lesson 08): a function ``masked_mean(last_hidden_state,
  attention_mask)`` that averages each sentence's token vectors and leaves padding out.
- ``dynamic_padding`` (lesson 09): a collate function ``collate(features)`` that pads a batch
  of tokenised sentences to the batch's own longest sentence.

Both checkers call the learner's function on probe inputs they build themselves (fresh
copies every call) and compare with what the lesson computes, naming the usual mistakes.
"""

from __future__ import annotations

from typing import Any

from labkit.quiz.checkers import CheckResult, register_checker

__all__ = ["check_masked_mean", "check_dynamic_padding", "reference_masked_mean"]


def reference_masked_mean(hidden, mask):
    """(B, L, H), (B, L) -> (B, H): the mean over the positions where mask is 1."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)


def _probe():
    """Hidden states of 3 sentences with 6, 4 and 2 real tokens, and their attention mask."""
    import torch

    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(3, 6, 4, generator=generator) + 1.0  # (B, L, H); nonzero means
    lengths = torch.tensor([6, 4, 2])
    mask = (torch.arange(6)[None, :] < lengths[:, None]).long()  # (B, L), as tokenizers give
    return hidden, mask


def _masked_mean_mistake(out, hidden, mask) -> str | None:
    import torch

    sums = (hidden * mask.unsqueeze(-1)).sum(dim=1)
    if torch.allclose(out, hidden.mean(dim=1), atol=1e-5):
        return ("Your function averages over every position, padding included, so a sentence's "
                "vector changes with the length of the batch it is in. Fix: multiply by the "
                "mask, attention_mask.unsqueeze(-1), before summing over dim=1.")
    if torch.allclose(out, sums / mask.shape[1], atol=1e-5):
        return ("You sum only the real tokens but divide by the padded length. Fix: divide by "
                "the number of real tokens per sentence, attention_mask.sum(dim=1, keepdim=True).")
    if torch.allclose(out, sums, atol=1e-5):
        return ("You return the sum of the real tokens' vectors, not their mean. Fix: divide "
                "by attention_mask.sum(dim=1, keepdim=True).")
    if torch.allclose(out, hidden[:, 0], atol=1e-5):
        return ("You return the vector at position 0, the [CLS] token, not a mean. Fix: "
                "average the real tokens' vectors with the mask.")
    return None


@register_checker("masked_mean_pooling")
def check_masked_mean(function: Any) -> CheckResult:
    """masked_mean(last_hidden_state (B, L, H), attention_mask (B, L)) -> (B, H)."""
    import torch

    if not callable(function):
        return CheckResult(False, f"Expected a function, got a {type(function).__name__}. Fix: "
                                  "hand in the function itself, quiz.answer(..., masked_mean).")
    hidden, mask = _probe()
    try:
        out = function(hidden.clone(), mask.clone())
    except Exception as error:  # noqa: BLE001  (any error in the learner's code)
        return CheckResult(False, f"masked_mean raised {type(error).__name__}: {error}. Fix: it "
                                  "takes (last_hidden_state, attention_mask), shapes (B, L, H) "
                                  "and (B, L); the mask holds integers 0 and 1.")
    if not isinstance(out, torch.Tensor):
        return CheckResult(False, f"masked_mean returned a {type(out).__name__}. Fix: return "
                                  "a tensor of shape (B, H).")
    if tuple(out.shape) != (3, 4):
        return CheckResult(False, f"For hidden states of shape (3, 6, 4) masked_mean returned "
                                  f"shape {tuple(out.shape)}; expected (3, 4), one vector per "
                                  f"sentence. Fix: reduce over dim=1, the token positions.")
    expected = reference_masked_mean(hidden, mask)
    if not torch.allclose(out.float(), expected, atol=1e-5):
        mistake = _masked_mean_mistake(out.float(), hidden, mask)
        return CheckResult(False, mistake or (
            "masked_mean does not give the mean of the real tokens' vectors. Fix: "
            "(h * m).sum(dim=1) / m.sum(dim=1), with m = attention_mask.unsqueeze(-1)."))
    # The same sentence alone must get the same vector as inside the padded batch.
    alone = function(hidden[2:, :2].clone(), mask[2:, :2].clone())
    if not torch.allclose(alone.float(), expected[2:], atol=1e-5):
        return CheckResult(False, "A sentence encoded alone gets another vector than in the "
                                  "padded batch. Fix: leave padded positions out of the mean.")
    return CheckResult(True, "Well done: padding no longer changes a sentence's vector; the "
                             "3 probe sentences of 6, 4 and 2 tokens each get the mean of "
                             "their own tokens, as labkit.text.mean_pool computes.")


def _probe_features():
    """Two batches of tokenised sentences (BERT's layout: [CLS]=2 ... [SEP]=3), with labels."""
    def sentence(length, label, start):
        ids = [2] + list(range(start, start + length - 2)) + [3]
        return {"input_ids": ids, "attention_mask": [1] * length,
                "token_type_ids": [0] * length, "labels": label}
    return ([sentence(5, 1, 10), sentence(9, 0, 20), sentence(3, 1, 30)],
            [sentence(4, 0, 40), sentence(6, 1, 50)])


def _batch_problem(out, features, pad_token_id: int) -> str | None:
    import torch

    if not isinstance(out, dict):
        return (f"collate returned a {type(out).__name__}. Fix: return a dict of tensors, "
                "the keys of the features plus 'labels'.")
    missing = [k for k in ("input_ids", "attention_mask", "labels") if k not in out]
    if missing:
        return f"The batch has no {missing}. Fix: keep every key of the features."
    longest = max(len(f["input_ids"]) for f in features)
    ids, mask = out["input_ids"], out["attention_mask"]
    if not isinstance(ids, torch.Tensor) or not isinstance(mask, torch.Tensor):
        return "input_ids and attention_mask must be tensors. Fix: torch.tensor(rows)."
    if ids.ndim == 2 and ids.shape[0] == len(features) and ids.shape[1] > longest:
        return (f"The batch is {ids.shape[1]} tokens long but its longest sentence has "
                f"{longest}: that is padding to a fixed length. Fix: pad to "
                "max(len(f['input_ids']) for f in features), the longest in this batch.")
    if tuple(ids.shape) != (len(features), longest) or ids.shape != mask.shape:
        return (f"input_ids has shape {tuple(ids.shape)} (attention_mask "
                f"{tuple(mask.shape)}); expected ({len(features)}, {longest}). Fix: one row per "
                "sentence, each padded to the longest sentence of the batch.")
    if ids.dtype != torch.long:
        return f"input_ids are {ids.dtype}. Fix: dtype=torch.long, as embeddings need."
    for row, feature in enumerate(features):
        n = len(feature["input_ids"])
        if ids[row, :n].tolist() != feature["input_ids"]:
            return ("A sentence's tokens moved or changed: BERT pads on the right. Fix: "
                    "row = ids + [pad_token_id] * (longest - len(ids)).")
        if (ids[row, n:] != pad_token_id).any():
            return f"Padded positions should hold the [PAD] id, {pad_token_id}. Fix: pad with it."
        if mask[row, :n].tolist() != [1] * n or (mask[row, n:] != 0).any():
            return ("The attention mask must be 1 on real tokens and 0 on padding. Fix: pad "
                    "attention_mask with 0.")
    labels = out["labels"]
    if not isinstance(labels, torch.Tensor) or labels.tolist() != [f["labels"] for f in features]:
        return "labels should be a (B,) tensor of the features' labels. Fix: torch.tensor(labels)."
    return None


@register_checker("dynamic_padding")
def check_dynamic_padding(function: Any, *, pad_token_id: int = 0) -> CheckResult:
    """collate(features) -> dict of (B, L) tensors, L the longest sentence of that batch."""
    if not callable(function):
        return CheckResult(False, f"Expected a function, got a {type(function).__name__}. Fix: "
                                  "hand in the collate function itself.")
    for features in _probe_features():
        try:
            out = function([dict(f, input_ids=list(f["input_ids"])) for f in features])
        except Exception as error:  # noqa: BLE001  (any error in the learner's code)
            return CheckResult(False, f"collate raised {type(error).__name__}: {error}. Fix: "
                                      "it takes a list of dicts, each with lists input_ids, "
                                      "attention_mask, token_type_ids and an int labels.")
        problem = _batch_problem(out, features, pad_token_id)
        if problem:
            return CheckResult(False, problem)
    return CheckResult(True, "Well done: each batch is exactly as long as its longest sentence "
                             "(9 and 6 tokens in the two probe batches), padded on the right "
                             "with [PAD] and masked out.")
