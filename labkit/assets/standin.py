"""The explicit offline stand-in: the real architecture with random weights, said loudly.

It exists so that a lesson can run where nothing can be downloaded (CI, a room with no
network). It is switched on by ``LABKIT_STANDIN=1`` or ``standin=True`` and never by itself:
without it, a missing asset is an error.
"""

from __future__ import annotations

import csv
import functools
import html
import string
import tempfile

from labkit.config import STANDIN_ENV, env_flag, shipped_data_dir

__all__ = ["standin_mode", "show_banner", "display_banner", "banner_text", "standin_tokenizer"]


def standin_mode(standin: bool | None = None) -> bool:
    """The argument if given, otherwise ``LABKIT_STANDIN`` from the environment."""
    return env_flag(STANDIN_ENV) if standin is None else bool(standin)


def banner_text(what: str, extra: str = "") -> str:
    return (f"STAND-IN MODE: {what} has random weights, not the pre-trained ones. {extra}"
            "Its predictions and any accuracy computed from them are meaningless; only the "
            "code path is real. To use the real weights: python -m labkit assets fetch, then "
            f"set {STANDIN_ENV}=0.")


def show_banner(what: str, extra: str = "") -> None:
    """The stand-in warning for a model: see ``display_banner``."""
    display_banner(banner_text(what, extra))


def display_banner(text: str) -> None:
    """A red box in a notebook (with the same words as plain text), a printed line elsewhere."""
    try:
        from IPython import get_ipython
        from IPython.display import display

        shell = get_ipython()
    except ImportError:
        shell = None
    if shell is None or not hasattr(shell, "kernel"):
        print(text)
        return
    box = ('<div class="lk-standin-banner" style="border:2px solid #c62828;background:#ffebee;'
           'color:#b71c1c;padding:6px 10px;font-weight:bold">&#9888; '
           f'{html.escape(text)}</div>')
    display({"text/plain": text, "text/html": box}, raw=True)


def _corpus() -> list[str]:
    path = shipped_data_dir() / "sentiment" / "sentiment.csv"
    with open(path, newline="", encoding="utf-8") as file:
        return [row["text"] for row in csv.DictReader(file)]


@functools.lru_cache(maxsize=1)
def standin_tokenizer(vocab_size: int = 4000):
    """A BERT-style WordPiece tokenizer the course trains on its own texts (data/sentiment).

    Same special tokens and lower-casing as bert-base-uncased, a much smaller vocabulary;
    every printable ASCII character is in it, so no English text becomes only ``[UNK]``.
    """
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertTokenizerFast

    trainer = BertWordPieceTokenizer(lowercase=True)
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]  # [PAD] first: id 0, as in BERT
    trainer.train_from_iterator(_corpus(), vocab_size=vocab_size, min_frequency=1,
                                special_tokens=special, show_progress=False,
                                initial_alphabet=list(string.ascii_lowercase + string.digits
                                                      + string.punctuation))
    with tempfile.TemporaryDirectory() as folder:
        trainer.save_model(folder)  # vocab.txt; from_pretrained reads it in every transformers
        # version (transformers 5 ignores a vocab_file= keyword and would keep only [UNK] & co.)
        return BertTokenizerFast.from_pretrained(folder, do_lower_case=True, model_max_length=512)
