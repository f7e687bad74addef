"""Text pieces the BERT lessons share: a tokenised dataset, dynamic padding, pooling, and
reading a masked-language model's guesses.

    from labkit.text import DynamicPadding, TextClassificationDataset, SentenceEncoder
    train_set = TextClassificationDataset(texts, labels, tokenizer, max_length=128)
    train_loader = DataLoader(train_set, batch_size=32, shuffle=True,
                              collate_fn=DynamicPadding(tokenizer.pad_token_id))
    encoder = SentenceEncoder(model.base_model, pooling="mean")  # (B, H) sentence vectors

Sentences are tokenised once, without padding; each batch is padded only to its own longest
sentence (dynamic padding), so short batches cost short computations.
"""

from __future__ import annotations

import csv
import inspect
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

__all__ = ["TextClassificationDataset", "DynamicPadding", "input_names", "mean_pool",
           "cls_pool", "SentenceEncoder", "fill_mask", "word_vector", "load_sst2"]

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# What each input is padded with; input_ids use the tokenizer's own [PAD] id.
PAD_VALUES = {"attention_mask": 0, "token_type_ids": 0}


def input_names(model: nn.Module) -> tuple[str, ...]:
    """The tokenizer outputs the model's forward accepts (DistilBERT takes no token_type_ids)."""
    accepted = inspect.signature(model.forward).parameters
    return tuple(name for name in MODEL_INPUTS if name in accepted)


class TextClassificationDataset(Dataset):
    """Sentences tokenised once, unpadded; item i is a dict of lists plus its ``labels``."""

    def __init__(self, texts: Sequence[str], labels: Sequence[int], tokenizer, *,
                 max_length: int = 128, names: Sequence[str] = MODEL_INPUTS) -> None:
        if len(texts) != len(labels):
            raise ValueError(f"{len(texts)} texts but {len(labels)} labels. Fix: pass one "
                             "label per text, in the same order.")
        # truncation: a longer text would not fit the position embeddings (512 for BERT).
        encodings = tokenizer(list(texts), truncation=True, max_length=max_length)
        self.encodings = {name: encodings[name] for name in names if name in encodings}
        self.texts, self.labels = list(texts), [int(label) for label in labels]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict:
        item = {name: values[index] for name, values in self.encodings.items()}
        item["labels"] = self.labels[index]
        return item


class DynamicPadding:
    """collate_fn: pad each batch to its own longest sequence, not to a fixed maximum.

    Takes a list of dicts of token lists (as ``TextClassificationDataset`` gives) and returns
    a dict of (B, L) long tensors, L the longest sequence in the batch, plus (B,) ``labels``.
    """

    def __init__(self, pad_token_id: int = 0) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, features: list[dict]) -> dict[str, Tensor]:
        if not features:
            raise ValueError("An empty batch cannot be padded. Fix: check the dataset.")
        longest = max(len(f["input_ids"]) for f in features)
        batch = {}
        for name in features[0]:
            if name == "labels":
                batch[name] = torch.tensor([f[name] for f in features], dtype=torch.long)
                continue
            pad = self.pad_token_id if name == "input_ids" else PAD_VALUES.get(name, 0)
            batch[name] = torch.tensor([list(f[name]) + [pad] * (longest - len(f[name]))
                                        for f in features], dtype=torch.long)  # (B, L)
        return batch


def mean_pool(last_hidden_state: Tensor, attention_mask: Tensor) -> Tensor:
    """Mean of the token vectors of each sentence, padding left out: (B, L, H) -> (B, H)."""
    mask = attention_mask.unsqueeze(-1).to(last_hidden_state.dtype)  # (B, L, 1)
    summed = (last_hidden_state * mask).sum(dim=1)                   # (B, H)
    return summed / mask.sum(dim=1).clamp(min=1)                     # / real tokens per row


def cls_pool(last_hidden_state: Tensor) -> Tensor:
    """The vector at the first position, [CLS]: (B, L, H) -> (B, H)."""
    return last_hidden_state[:, 0]


class SentenceEncoder(nn.Module):
    """A Hugging Face encoder that returns one vector per sentence, (B, H): what
    ``labkit.features.extract_features`` needs from a text backbone."""

    def __init__(self, encoder: nn.Module, *, pooling: str = "mean") -> None:
        super().__init__()
        if pooling not in ("mean", "cls"):
            raise ValueError(f"pooling={pooling!r}. Fix: pass 'mean' or 'cls'.")
        self.encoder, self.pooling = encoder, pooling

    def forward(self, input_ids: Tensor, attention_mask: Tensor, **inputs) -> Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                              **inputs).last_hidden_state                   # (B, L, H)
        return mean_pool(hidden, attention_mask) if self.pooling == "mean" else cls_pool(hidden)


@torch.no_grad()
def fill_mask(model: nn.Module, tokenizer, text: str, *, top_k: int = 5) -> list[tuple[str, float]]:
    """The ``top_k`` most probable tokens for the one [MASK] in ``text``, with probabilities."""
    inputs = tokenizer(text, return_tensors="pt").to(next(model.parameters()).device)
    positions = (inputs["input_ids"][0] == tokenizer.mask_token_id).nonzero().flatten()
    if len(positions) != 1:
        raise ValueError(f"{text!r} has {len(positions)} {tokenizer.mask_token} tokens. "
                         f"Fix: put exactly one {tokenizer.mask_token} where the word is missing.")
    model.eval()
    names = input_names(model)
    logits = model(**{k: v for k, v in inputs.items() if k in names}).logits[0, positions[0]]
    # A stand-in model keeps the checkpoint's 30,522 outputs while the course's tokenizer has
    # fewer tokens; only ids the tokenizer can spell are candidates (all of them, normally).
    probs = logits[:len(tokenizer)].float().softmax(dim=-1)
    top = probs.topk(top_k)
    return [(tokenizer.convert_ids_to_tokens(int(i)), float(p))
            for p, i in zip(top.values, top.indices)]


@torch.no_grad()
def word_vector(encoder: nn.Module, tokenizer, sentence: str, word: str) -> tuple[Tensor, Tensor]:
    """(contextual, static) vectors of ``word`` in ``sentence``, each (H,).

    Contextual: the encoder's last hidden state at the word's sub-word positions (their mean).
    Static: the same positions' rows of the input embedding table, which ignore the context.
    """
    inputs = tokenizer(sentence, return_tensors="pt").to(next(encoder.parameters()).device)
    pieces = tokenizer(word, add_special_tokens=False)["input_ids"]
    ids = inputs["input_ids"][0].tolist()
    start = next((i for i in range(len(ids)) if ids[i:i + len(pieces)] == pieces), None)
    if start is None:
        raise ValueError(f"{word!r} does not appear in {sentence!r} as the same tokens. "
                         "Fix: pick a word written the same way in the sentence.")
    span = slice(start, start + len(pieces))
    encoder.eval()
    names = input_names(encoder)
    hidden = encoder(**{k: v for k, v in inputs.items() if k in names}).last_hidden_state[0]
    static = encoder.get_input_embeddings().weight[inputs["input_ids"][0, span]]  # (pieces, H)
    return hidden[span].mean(dim=0), static.mean(dim=0)


def load_sst2(root: Path | str, split: str = "train") -> tuple[list[str], list[int]]:
    """(sentences, labels) of GLUE SST-2's ``train`` or ``dev`` split (the test split has no
    labels) from the folder ``labkit.assets.dataset_path("sst2")`` returns."""
    if split not in ("train", "dev"):
        raise ValueError(f"split={split!r}: GLUE SST-2 has labels for 'train' and 'dev'. "
                         "Fix: pass one of them.")
    found = sorted(Path(root).rglob(f"{split}.tsv"))
    if not found:
        raise FileNotFoundError(f"No {split}.tsv under {root}. Fix: python -m labkit assets "
                                "fetch sst2 (or verify it).")
    texts, labels = [], []
    with open(found[0], newline="", encoding="utf-8") as file:
        for row in csv.DictReader(file, delimiter="\t", quoting=csv.QUOTE_NONE):
            texts.append(row["sentence"].strip())
            labels.append(int(row["label"]))
    return texts, labels
