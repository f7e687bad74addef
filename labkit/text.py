"""Text pieces of the BERT lessons (08, 09): a tokenise-once dataset, dynamic padding, pooling,
a masked-language model's guesses, and texts of your own from a CSV file, checked."""

import csv
import difflib
import inspect
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import Dataset

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def input_names(model: nn.Module) -> tuple[str, ...]:
    """The tokenizer outputs that the model's forward takes. Lesson 09."""
    accepted = inspect.signature(model.forward).parameters  # DistilBERT: no token_type_ids
    return tuple(name for name in MODEL_INPUTS if name in accepted)


class TextClassificationDataset(Dataset):
    """Texts tokenised once, unpadded (item i: a dict of token lists and ``labels``); texts cut
    to ``max_length`` tokens are listed in ``truncated``, with a warning. Lesson 09."""

    def __init__(self, texts: list[str], labels: list[int], tokenizer, *,
                 max_length: int = 128, names: list[str] = MODEL_INPUTS) -> None:
        if len(texts) != len(labels):
            raise ValueError(f"{len(texts)} texts but {len(labels)} labels. Fix: pass one "
                             "label per text, in the same order.")
        bad = [(i, "empty" if isinstance(text, str) else f"{type(text).__name__} {text!r}")
               for i, text in enumerate(texts) if not isinstance(text, str) or not text.strip()]
        if bad:
            shown = _first([f"text {i} ({what})" for i, what in bad], limit=5)
            raise ValueError(f"{len(bad)} of {len(texts)} texts are empty or not strings: {shown} "
                             "(pandas reads an empty cell as NaN, a float). Fix: drop them with "
                             "their labels: [i for i, t in enumerate(texts) if isinstance(t, str) "
                             "and t.strip()] are the ones to keep.")
        self.texts, self.labels = list(texts), [int(label) for label in labels]  # 0, 1, 2, ...
        # truncation: a longer text would not fit the position embeddings (512 for BERT).
        encodings = tokenizer(self.texts, truncation=True, max_length=max_length)
        self.encodings = {name: encodings[name] for name in names if name in encodings}
        # Only texts that came back max_length long can have been cut: tokenise those again.
        full = [i for i, ids in enumerate(encodings["input_ids"]) if len(ids) >= max_length]
        longer = tokenizer([self.texts[i] for i in full], truncation=True,
                           max_length=max_length + 1)["input_ids"] if full else []
        self.truncated = [i for i, ids in zip(full, longer) if len(ids) > max_length]
        if self.truncated:
            warnings.warn(
                f"labkit: {len(self.truncated)} of {len(self.texts)} texts are longer than "
                f"max_length={max_length} tokens and were cut to that length (the first is text "
                f"{self.truncated[0]}; dataset.truncated lists them). Fix: if their ends matter, "
                f"pass a larger max_length (BERT takes up to 512).", stacklevel=2)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict:
        return {**{name: values[index] for name, values in self.encodings.items()},
                "labels": self.labels[index]}


@dataclass
class DynamicPadding:
    """collate_fn: dicts of token lists -> (B, L) tensors padded to the batch's longest (L),
    input_ids with ``pad_token_id``, the rest with 0, and (B,) ``labels``. Lesson 09."""

    pad_token_id: int = 0

    def __call__(self, features: list[dict]) -> dict[str, Tensor]:
        batch = {name: pad_sequence([torch.tensor(f[name]) for f in features], batch_first=True,
                                    padding_value=self.pad_token_id if name == "input_ids" else 0)
                 for name in features[0] if name != "labels"}                  # (B, L) each
        return {**batch, "labels": torch.tensor([f["labels"] for f in features])}  # (B,)


def mean_pool(last_hidden_state: Tensor, attention_mask: Tensor) -> Tensor:
    """Mean of each sentence's token vectors, padding left out: (B, L, H) -> (B, H). Lesson 08."""
    mask = attention_mask.unsqueeze(-1).to(last_hidden_state.dtype)  # (B, L, 1)
    summed = (last_hidden_state * mask).sum(dim=1)                   # (B, H)
    return summed / mask.sum(dim=1).clamp(min=1)                     # / real tokens per row


def cls_pool(last_hidden_state: Tensor) -> Tensor:
    """The vector at position 0, [CLS]: (B, L, H) -> (B, H). Lesson 08."""
    return last_hidden_state[:, 0]


class SentenceEncoder(nn.Module):
    """A Hugging Face encoder that returns one (B, H) vector per sentence. Lesson 09."""

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
    """(AdamW, linear warm-up and decay stepped per batch, warm-up steps) as google-research/bert's
    optimization.py: no weight decay on biases and LayerNorm weights. Lesson 09."""
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


def _encode(model: nn.Module, tokenizer, text: str):
    """(tokenizer output on the model's device, model output of the inputs it takes)."""
    inputs = tokenizer(text, return_tensors="pt").to(next(model.parameters()).device)
    return inputs, model.eval()(**{k: v for k, v in inputs.items() if k in input_names(model)})


@torch.no_grad()
def fill_mask(model: nn.Module, tokenizer, text: str, *, top_k: int = 5) -> list[tuple[str, float]]:
    """The ``top_k`` most probable tokens, with probabilities, for the one [MASK]. Lesson 08."""
    inputs, outputs = _encode(model, tokenizer, text)
    positions = (inputs["input_ids"][0] == tokenizer.mask_token_id).nonzero().flatten()
    if len(positions) != 1:
        raise ValueError(f"{text!r} has {len(positions)} {tokenizer.mask_token} tokens. "
                         f"Fix: put exactly one {tokenizer.mask_token} where the word is missing.")
    # Only ids the tokenizer can spell: a stand-in model may have more outputs (30,522).
    probs = outputs.logits[0, positions[0], :len(tokenizer)].float().softmax(dim=-1)
    top = probs.topk(top_k)
    return [(tokenizer.convert_ids_to_tokens(i), p)
            for p, i in zip(top.values.tolist(), top.indices.tolist())]


@torch.no_grad()
def word_vector(encoder: nn.Module, tokenizer, sentence: str, word: str) -> tuple[Tensor, Tensor]:
    """(contextual, static) (H,) vectors of ``word`` in ``sentence``: the mean over its sub-words
    of the last hidden state, and of the input embedding rows. Lesson 08."""
    inputs, outputs = _encode(encoder, tokenizer, sentence)
    pieces = tokenizer(word, add_special_tokens=False)["input_ids"]
    ids = inputs["input_ids"][0].tolist()
    start = next((i for i in range(len(ids)) if ids[i:i + len(pieces)] == pieces), None)
    if start is None:
        raise ValueError(f"{word!r} does not appear in {sentence!r} as the same tokens. "
                         "Fix: pick a word written the same way in the sentence.")
    span = slice(start, start + len(pieces))
    static = encoder.get_input_embeddings().weight[inputs["input_ids"][0, span]]  # (pieces, H)
    return outputs.last_hidden_state[0, span].mean(dim=0), static.mean(dim=0)


def load_sst2(root: Path | str, split: str = "train") -> tuple[list[str], list[int]]:
    """(sentences, labels) of GLUE SST-2's labelled ``train`` or ``dev`` split. Lesson 09."""
    found = sorted(Path(root).rglob(f"{split}.tsv"))
    if split not in ("train", "dev") or not found:  # the test split has no labels
        raise FileNotFoundError(f"No labelled {split}.tsv under {root}: GLUE SST-2 has labels for "
                                "'train' and 'dev'. Fix: pass one of them; if it is missing, "
                                "python -m labkit assets fetch sst2 (or verify it).")
    _, rows = _read_rows(found[0], delimiter="\t", quoting=csv.QUOTE_NONE)
    return [row["sentence"].strip() for _, row in rows], [int(row["label"]) for _, row in rows]


def _read_rows(path: Path | str, *, delimiter: str = ",", encoding: str = "utf-8",
               quoting: int = csv.QUOTE_MINIMAL) -> tuple[list[str], list[tuple[int, dict]]]:
    """(column names, [(line number, row), ...]); a wrongly encoded file names the line."""
    data = Path(path).read_bytes()
    codec = "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding
    try:
        text = data.decode(codec)
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ValueError(
            f"{path} is not {encoding} text: byte {data[exc.start]:#04x} on line {line} cannot be "
            f"read ({exc.reason}); Excel saves plain \"CSV\" as Windows-1252. Fix: save it again "
            "as UTF-8 (Excel: \"CSV UTF-8\"), or pass encoding=\"cp1252\" if it is that.") from None
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting)
    return list(reader.fieldnames or []), [(reader.line_num, row) for row in reader]


def _first(items: list, limit: int = 10) -> str:
    """The first ``limit`` items, comma-separated, and how many more there are."""
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(map(str, items[:limit])) + more


def _no_column(name: str, columns: list[str], delimiter: str) -> str:
    """The missing column ``name``, the columns, a close name, or the separator the file uses."""
    close = difflib.get_close_matches(name, columns, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    for other in ",;\t|":
        if len(columns) == 1 and other != delimiter and other in columns[0]:
            hint += f" The columns seem to be separated by {other!r}: pass delimiter={other!r}."
    return f"no column {name!r}; its columns are {columns}.{hint}"


def load_text_csv(path: Path | str, *, text_column: str = "text", label_column: str = "label",
                  label_names: list[str] | None = None, delimiter: str = ",",
                  encoding: str = "utf-8") -> tuple[list[str], list[int], list[str]]:
    """(texts, labels, label_names) from a CSV (or, with ``delimiter="\\t"``, TSV) file of your
    own; without ``label_names`` they are the distinct labels sorted, numbers as numbers."""
    columns, rows = _read_rows(path, delimiter=delimiter, encoding=encoding)
    texts = [(row.get(text_column) or "").strip() for _, row in rows]
    values = [(row.get(label_column) or "").strip() for _, row in rows]
    if label_names is None:  # numbers as numbers: "2" before "10"
        label_names = sorted(set(values), key=lambda v: (0, int(v), "") if v.isdecimal()
                             else (1, 0, v))
    label_names = [str(name) for name in label_names]
    empty = [line for (line, _), text in zip(rows, texts) if not text]
    unexpected = {value: [line for (line, _), v in zip(rows, values) if v == value]
                  for value in dict.fromkeys(values) if value not in label_names}
    shown = "; ".join(f"{value!r} on lines {_first(lines)}" for value, lines in unexpected.items())
    problems = [  # (found, what is wrong, the fix), checked in this order
        (text_column not in columns, _no_column(text_column, columns, delimiter),
         "pass text_column= with the right column name"),
        (label_column not in columns, _no_column(label_column, columns, delimiter),
         "pass label_column= with the right column name"),
        (not rows, "the file has column names but no rows.", "add the data"),
        (empty, f"{len(empty)} rows have an empty {text_column!r}: lines {_first(empty)}.",
         "fill them in or delete those rows"),
        (unexpected, f"column {label_column!r} has values that are not in label_names "
         f"{label_names}: {shown}.", "correct those rows, or add the values to label_names"),
        (len(label_names) < 2, f"every row has the label {', '.join(map(repr, label_names))}, "
         "and a classifier needs at least two.", "add examples of the other labels"),
    ]
    for found, problem, fix in problems:
        if found:
            raise ValueError(f"{path}: {problem} Fix: {fix}.")
    return texts, [label_names.index(v) for v in values], label_names
