"""Text pieces the BERT lessons share: a tokenised dataset, dynamic padding, pooling, and
reading a masked-language model's guesses.

    from labkit.text import DynamicPadding, TextClassificationDataset, SentenceEncoder
    train_set = TextClassificationDataset(texts, labels, tokenizer, max_length=128)
    train_loader = DataLoader(train_set, batch_size=32, shuffle=True,
                              collate_fn=DynamicPadding(tokenizer.pad_token_id))
    encoder = SentenceEncoder(model.base_model, pooling="mean")  # (B, H) sentence vectors
    optimizer, scheduler, warmup_steps = fine_tuning_optimizer(model, lr=1e-4, total_steps=400)

Sentences are tokenised once, without padding; each batch is padded only to its own longest
sentence (dynamic padding), so short batches cost short computations. ``fine_tuning_optimizer``
sets up AdamW and its learning-rate schedule the way BERT's own fine-tuning code does.

Texts of your own: ``load_text_csv("reviews.csv", text_column="text", label_column="label")``
gives ``(texts, labels, label_names)`` and names every problem it finds (a file that is not
UTF-8, a missing column, empty texts, unexpected labels) with the line and the fix. The dataset
refuses empty or non-string texts and labels that are not class indices, and warns when it
cuts texts longer than ``max_length``.
"""

from __future__ import annotations

import csv
import difflib
import inspect
import io
import operator
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

__all__ = ["TextClassificationDataset", "DynamicPadding", "input_names", "mean_pool",
           "cls_pool", "SentenceEncoder", "fine_tuning_optimizer", "fill_mask", "word_vector",
           "load_sst2", "load_text_csv"]

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# What each input is padded with; input_ids use the tokenizer's own [PAD] id.
PAD_VALUES = {"attention_mask": 0, "token_type_ids": 0}


def input_names(model: nn.Module) -> tuple[str, ...]:
    """The tokenizer outputs the model's forward accepts (DistilBERT takes no token_type_ids)."""
    accepted = inspect.signature(model.forward).parameters
    return tuple(name for name in MODEL_INPUTS if name in accepted)


class TextClassificationDataset(Dataset):
    """Sentences tokenised once, unpadded; item i is a dict of lists plus its ``labels``.

    ``truncated`` lists the positions of the texts that were cut to ``max_length`` tokens.
    """

    def __init__(self, texts: Sequence[str], labels: Sequence[int], tokenizer, *,
                 max_length: int = 128, names: Sequence[str] = MODEL_INPUTS) -> None:
        if len(texts) != len(labels):
            raise ValueError(f"{len(texts)} texts but {len(labels)} labels. Fix: pass one "
                             "label per text, in the same order.")
        _check_texts(texts)
        self.texts, self.labels = list(texts), _class_indices(labels)
        # truncation: a longer text would not fit the position embeddings (512 for BERT).
        encodings = tokenizer(self.texts, truncation=True, max_length=max_length)
        self.encodings = {name: encodings[name] for name in names if name in encodings}
        self.truncated = _truncated(self.texts, encodings["input_ids"], tokenizer, max_length)
        if self.truncated:
            limit = getattr(tokenizer, "model_max_length", None)
            most = f" (this tokenizer takes up to {limit})" if limit and limit < 1e6 else ""
            warnings.warn(
                f"labkit: {len(self.truncated)} of {len(self.texts)} texts are longer than "
                f"max_length={max_length} tokens and were cut to that length (the first is text "
                f"{self.truncated[0]}; dataset.truncated lists them). Fix: if their ends matter, "
                f"pass a larger max_length{most}.", stacklevel=2)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict:
        item = {name: values[index] for name, values in self.encodings.items()}
        item["labels"] = self.labels[index]
        return item


def _check_texts(texts: Sequence) -> None:
    bad = [i for i, text in enumerate(texts) if not isinstance(text, str) or not text.strip()]
    if bad:
        shown = ", ".join(f"text {i} ({_describe(texts[i])})" for i in bad[:5])
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise ValueError(
            f"{len(bad)} of {len(texts)} texts are empty or not strings: {shown}{more}. (An "
            "empty cell read with pandas becomes NaN, a float.) Fix: drop them with their labels, "
            "e.g. keep = [i for i, t in enumerate(texts) if isinstance(t, str) and t.strip()].")


def _describe(value) -> str:
    return "empty" if isinstance(value, str) else f"{type(value).__name__} {value!r}"


def _class_indices(labels: Sequence) -> list[int]:
    indices = []
    for i, label in enumerate(labels):
        try:
            if isinstance(label, bool) or str(getattr(label, "dtype", "")) == "torch.bool":
                raise TypeError
            index = operator.index(label)  # ints, NumPy and 0-d torch integers; not 1.5 or "pos"
        except TypeError:
            index = -1
        if index < 0:
            raise ValueError(f"label {i} is {label!r}, not a class index (0, 1, 2, ...). Fix: map "
                             "each label name to a number, e.g. labels = [names.index(l) for l in "
                             "labels], or read the file with labkit.text.load_text_csv.")
        indices.append(index)
    return indices


def _truncated(texts: list[str], input_ids: list, tokenizer, max_length: int) -> list[int]:
    """Positions of the texts longer than ``max_length`` tokens: only texts that came back
    exactly ``max_length`` long can have been cut, so only those are tokenised again."""
    full = [i for i, ids in enumerate(input_ids) if len(ids) >= max_length]
    if not full:
        return []
    longer = tokenizer([texts[i] for i in full], truncation=True, max_length=max_length + 1)
    return [i for i, ids in zip(full, longer["input_ids"]) if len(ids) > max_length]


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


def fine_tuning_optimizer(model: nn.Module, *, lr: float, total_steps: int,
                          warmup_ratio: float = 0.1, weight_decay: float = 0.01):
    """AdamW with a linear warm-up and decay, as BERT's fine-tuning code sets them up.

    Biases and LayerNorm weights get no weight decay (google-research/bert's optimization.py
    leaves out "LayerNorm", "layer_norm" and "bias"; transformers' Trainer leaves out the same
    through ``get_parameter_names``). The warm-up lasts ``int(warmup_ratio * total_steps)``
    steps, as in BERT's run_classifier.py, and reaches the scheduler as a number of steps,
    which every transformers version reads the same way. Step the scheduler once per batch.
    Returns ``(optimizer, scheduler, warmup_steps)``.
    """
    from transformers import get_linear_schedule_with_warmup
    from transformers.trainer_pt_utils import get_parameter_names

    if not 0 <= warmup_ratio < 1:
        raise ValueError(f"warmup_ratio={warmup_ratio} is not a share of the steps. Fix: pass "
                         f"a number from 0 up to (not including) 1, for example 0.1.")
    decay = {n for n in get_parameter_names(model, [nn.LayerNorm]) if "bias" not in n}
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [{"params": [p for n, p in trainable if n in decay], "weight_decay": weight_decay},
              {"params": [p for n, p in trainable if n not in decay], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=lr)
    warmup_steps = int(warmup_ratio * total_steps)
    scheduler = get_linear_schedule_with_warmup(optimizer, warmup_steps, total_steps)
    return optimizer, scheduler, warmup_steps


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
    _, rows = _read_rows(found[0], delimiter="\t", quoting=csv.QUOTE_NONE)
    return [row["sentence"].strip() for _, row in rows], [int(row["label"]) for _, row in rows]


def _read_rows(path: Path | str, *, delimiter: str = ",", encoding: str = "utf-8",
               quoting: int = csv.QUOTE_MINIMAL) -> tuple[list[str], list[tuple[int, dict]]]:
    """(column names, [(line number, row), ...]) of a CSV/TSV file; a file in another encoding
    is an error naming the line and the fix. A UTF-8 byte-order mark (Excel's) is dropped."""
    path = Path(path)
    data = path.read_bytes()
    codec = "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding
    try:
        text = data.decode(codec)
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ValueError(
            f"{path} is not {encoding} text: byte {data[exc.start]:#04x} on line {line} cannot be "
            f"read ({exc.reason}). It was probably saved as Windows-1252 or Latin-1 (what Excel "
            "writes for plain \"CSV\"). Fix: save it again as UTF-8 (Excel: \"CSV UTF-8\"; a text "
            "editor: encoding UTF-8), or pass encoding=\"cp1252\" if you know it is that.") from None
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting)
    rows = [(reader.line_num, row) for row in reader]
    return list(reader.fieldnames or []), rows


def _need_column(path, columns: list[str], name: str, argument: str, delimiter: str) -> None:
    if name in columns:
        return
    close = difflib.get_close_matches(name, columns, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    other = next((d for d in ",;\t|" if d != delimiter and d in columns[0]), None) \
        if len(columns) == 1 else None
    if other:
        hint += f" The columns seem to be separated by {other!r}: pass delimiter={other!r}."
    raise ValueError(f"{path} has no column {name!r}; its columns are {columns}.{hint} Fix: pass "
                     f"{argument}= with the right column name.")


def load_text_csv(path: Path | str, *, text_column: str = "text", label_column: str = "label",
                  label_names: Sequence[str] | None = None, delimiter: str = ",",
                  encoding: str = "utf-8") -> tuple[list[str], list[int], list[str]]:
    """(texts, labels, label_names) from a CSV file of your own (``delimiter="\\t"`` for TSV).

    Label i is ``label_names[i]``. Pass ``label_names`` to fix their order and to catch any
    other value in the label column; without it they are the distinct values, sorted (numbers
    as numbers). Empty texts, unexpected labels and a single label value are errors that list
    the lines.
    """
    columns, rows = _read_rows(path, delimiter=delimiter, encoding=encoding)
    _need_column(path, columns, text_column, "text_column", delimiter)
    _need_column(path, columns, label_column, "label_column", delimiter)
    if not rows:
        raise ValueError(f"{path} has column names but no rows. Fix: add the data.")
    texts = [(row[text_column] or "").strip() for _, row in rows]
    values = [(row[label_column] or "").strip() for _, row in rows]
    empty = [line for (line, _), text in zip(rows, texts) if not text]
    if empty:
        raise ValueError(f"{path}: {len(empty)} rows have an empty {text_column!r}: lines "
                         f"{_lines(empty)}. Fix: fill them in or delete those rows.")
    if label_names is None:
        label_names = sorted(set(values), key=_label_order)
    label_names = [str(name) for name in label_names]
    unexpected: dict[str, list[int]] = {}
    for (line, _), value in zip(rows, values):
        if value not in label_names:
            unexpected.setdefault(value, []).append(line)
    if unexpected:
        shown = "; ".join(f"{v!r} on lines {_lines(lines)}" for v, lines in unexpected.items())
        raise ValueError(f"{path}: column {label_column!r} has values that are not in "
                         f"label_names {label_names}: {shown}. Fix: correct those rows, or add "
                         "the values to label_names.")
    if len(label_names) < 2:
        raise ValueError(f"{path}: every row has the label {label_names[0]!r}, and a classifier "
                         "needs at least two. Fix: add examples of the other labels.")
    return texts, [label_names.index(v) for v in values], label_names


def _label_order(value: str) -> tuple:
    return (0, int(value), "") if value.isdigit() else (1, 0, value)  # "2" before "10"


def _lines(lines: list[int]) -> str:
    more = f" and {len(lines) - 10} more" if len(lines) > 10 else ""
    return ", ".join(map(str, lines[:10])) + more
