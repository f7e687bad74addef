"""Checkers for lessons 08 (BERT) and 09 (fine-tuning BERT): masked mean pooling, padding."""

import copy

import torch

from labkit.exercises.checks import attempt, checker, require


def reference_masked_mean(hidden, mask):
    """(B, L, H), (B, L) -> (B, H): the mean over the positions where mask is 1."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)


@checker('quiz.answer("masked_mean_pooling", masked_mean)')
def check_masked_mean(masked_mean) -> str:
    """Lesson 08: ``masked_mean(hidden (B, L, H), mask (B, L))``, as ``reference_masked_mean``."""
    hidden = torch.randn(3, 6, 4, generator=torch.Generator().manual_seed(0)) + 1  # (B, L, H)
    mask = (torch.arange(6)[None, :] < torch.tensor([6, 4, 2])[:, None]).long()  # (B, L)
    out = attempt("masked_mean", "it takes (last_hidden_state, attention_mask), shapes (B, L, H) "
                  "and (B, L); the mask holds 0 and 1.", masked_mean, hidden.clone(), mask.clone())
    require(isinstance(out, torch.Tensor) and out.shape == (3, 4), f"masked_mean returned "
            f"{getattr(out, 'shape', type(out).__name__)}, not (3, 4). Fix: reduce over dim=1.")
    sums = (hidden * mask.unsqueeze(-1)).sum(dim=1)  # (B, H) over the real tokens
    for wrong, mistake in [
            (hidden.mean(dim=1), "Your function averages over every position, padding included. "
             "Fix: multiply by the mask, attention_mask.unsqueeze(-1), before summing."),
            (sums / 6, "You divide by the padded length. Fix: use the number of real tokens."),
            (sums, "You return the masked sum. Fix: divide it by the number of real tokens."),
            (hidden[:, 0], "You return the [CLS] token's vector. Fix: average the real tokens'.")]:
        require(not torch.allclose(out.float(), wrong, atol=1e-5), mistake)
    require(torch.allclose(out.float(), reference_masked_mean(hidden, mask), atol=1e-5),
            "masked_mean does not give the mean of the real tokens' vectors. Fix: "
            "(h * m).sum(dim=1) / m.sum(dim=1), with m = attention_mask.unsqueeze(-1).")
    return "Well done: padding no longer changes a sentence's vector, as in labkit.text.mean_pool."


PADDING_PROBES = [  # sentences of (length, label, first token id), as BERT's [CLS]=2 ... [SEP]=3
    [{"input_ids": [2, *range(start, start + length - 2), 3], "attention_mask": [1] * length,
      "token_type_ids": [0] * length, "labels": label} for length, label, start in sentences]
    for sentences in ([(5, 1, 10), (9, 0, 20), (3, 1, 30)], [(4, 0, 40), (6, 1, 50)])]


@checker('quiz.answer("collate_batch", collate_batch)')
def check_dynamic_padding(collate, *, pad_token_id: int = 0) -> str:
    """Lesson 09: collate(features) -> dict of (B, L) tensors, L the batch's longest sentence."""
    for features in PADDING_PROBES:
        out = attempt("collate", "it takes a list of dicts of lists input_ids, attention_mask, "
                      "token_type_ids and an int labels.", collate, copy.deepcopy(features))
        require(isinstance(out, dict) and {"input_ids", "attention_mask", "labels"} <= set(out),
                f"collate returned {list(out) if isinstance(out, dict) else type(out).__name__}. "
                f"Fix: return a dict of tensors with the keys of the features and 'labels'.")
        ids, mask, labels = out["input_ids"], out["attention_mask"], out["labels"]
        require(all(isinstance(t, torch.Tensor) for t in (ids, mask, labels)), "input_ids, "
                "attention_mask and labels must be tensors. Fix: torch.tensor(rows).")
        longest, batch = max(len(f["input_ids"]) for f in features), len(features)
        require(ids.shape[-1] <= longest, f"The batch is {ids.shape[-1]} tokens long, its longest "
                f"sentence {longest}: a fixed length. Fix: pad to the longest in this batch.")
        require(ids.shape == mask.shape == (batch, longest), f"input_ids and attention_mask have "
                f"shapes {tuple(ids.shape)}, {tuple(mask.shape)}. Fix: both ({batch}, {longest}).")
        for row, feature in enumerate(features):
            n = len(feature["input_ids"])
            require(ids[row, :n].tolist() == feature["input_ids"], "A sentence's tokens moved: "
                    "BERT pads on the right. Fix: ids + [pad_token_id] * (longest - len(ids)).")
            require(not (ids[row, n:] != pad_token_id).any(), f"Padded positions should hold the "
                    f"[PAD] id, {pad_token_id}. Fix: pad with it.")
            require(mask[row, :n].all() and not mask[row, n:].any(), "The attention mask must be "
                    "1 on real tokens and 0 on padding. Fix: pad attention_mask with 0.")
        require(labels.tolist() == [f["labels"] for f in features], "labels should be a (B,) "
                "tensor of the features' labels. Fix: torch.tensor(labels).")
    return "Well done: each batch is as long as its longest sentence, padded right and masked."
