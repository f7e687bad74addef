"""The explicit stand-in mode: the real architecture with random weights, said loudly.

It lets a lesson run where nothing can be downloaded (CI, a room without a network). It is
switched on by ``LABKIT_STANDIN=1`` or ``standin=True``, never by itself: without it, a missing
asset is an error.
"""

from __future__ import annotations

import csv
import functools
import html
import string
import tempfile

from labkit.config import STANDIN_ENV, env_flag, shipped_data_dir
from labkit.files import in_notebook


def standin_mode(standin: bool | None = None) -> bool:
    """The argument if given, otherwise ``LABKIT_STANDIN`` from the environment."""
    return env_flag(STANDIN_ENV) if standin is None else bool(standin)


def show_banner(what: str, extra: str = "", *, text: str | None = None) -> None:
    """The stand-in warning for the model ``what`` (or any ``text``): a red box in a notebook,
    with the same words as plain text, and a printed line elsewhere."""
    text = text or (f"STAND-IN MODE: {what} has random weights, not the pre-trained ones. "
                    f"{extra}Its predictions and any accuracy computed from them are "
                    "meaningless; only the code path is real. To use the real weights: python "
                    f"-m labkit assets fetch, then set {STANDIN_ENV}=0.")
    if not in_notebook():
        print(text)
        return
    from IPython.display import display

    box = ('<div class="lk-standin-banner" style="border:2px solid #c62828;background:#ffebee;'
           f'color:#b71c1c;padding:6px 10px;font-weight:bold">&#9888; {html.escape(text)}</div>')
    display({"text/plain": text, "text/html": box}, raw=True)


@functools.lru_cache(maxsize=1)
def standin_tokenizer(vocab_size: int = 4000):
    """A BERT-style WordPiece tokenizer trained on the course's own texts (data/sentiment):
    bert-base-uncased's special tokens and lower-casing, a much smaller vocabulary, and every
    printable ASCII character in it, so no English text becomes only ``[UNK]``."""
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertTokenizerFast

    with open(shipped_data_dir() / "sentiment" / "sentiment.csv", newline="",
              encoding="utf-8") as file:
        texts = [row["text"] for row in csv.DictReader(file)]
    trainer = BertWordPieceTokenizer(lowercase=True)
    trainer.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=1, show_progress=False,
                                special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
                                initial_alphabet=list(string.ascii_lowercase + string.digits
                                                      + string.punctuation))
    with tempfile.TemporaryDirectory() as folder:
        trainer.save_model(folder)  # vocab.txt, which from_pretrained reads in every version
        return BertTokenizerFast.from_pretrained(folder, do_lower_case=True, model_max_length=512)
