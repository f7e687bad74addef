"""How a learner's typed answer is read: text normalised for comparison, and numbers with
their units, in the spellings people actually type ("11,176,512", "2e9 FLOP", "2,5", "1/3").
"""

from __future__ import annotations

import math
import numbers
import re
import unicodedata
from typing import Any

__all__ = ["normalise_text", "parse_number", "as_number"]


def normalise_text(text: str) -> str:
    """The form in which short answers are compared.

    Unicode NFKC (so a ligature or a decomposed accent equals its usual spelling), case
    folded (so "ResNet" equals "resnet" and "Straße" equals "strasse"), dashes read as spaces
    ("fine-tuning" equals "fine tuning"), runs of spaces collapsed and surrounding quotes and
    punctuation dropped.
    """
    text = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    text = re.sub(r"[\-\u2010-\u2015\u2212]", " ", text)
    return " ".join(text.split()).strip(" .,;:!?\"'`\u201c\u201d\u2018\u2019")


_NUMBER = re.compile(r"""\s*(?P<number>[-+]?(?:\d[\d_,]*(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)
                         (?:\s*/\s*(?P<denominator>\d+(?:\.\d*)?))?
                         \s*(?P<unit>.*?)\s*$""", re.X)
_THOUSANDS = re.compile(r"[-+]?\d{1,3}(?:,\d{3})+(?:\.\d*)?(?:[eE][-+]?\d+)?")


def parse_number(text: str) -> tuple[float, str]:
    """``"11,176,512"``, ``"2.5e9 FLOP"``, ``"1/3"``, ``"2,5"`` -> (number, unit or "").

    A comma is a thousands separator when it splits groups of three digits ("11,176,512"),
    otherwise a decimal comma ("2,5"). Raises ValueError with a readable reason.
    """
    text = unicodedata.normalize("NFKC", text).replace("\u2212", "-")
    match = _NUMBER.fullmatch(text)
    if not match:
        raise ValueError(f"{text.strip()!r} does not start with a number")
    number = match["number"]
    if _THOUSANDS.fullmatch(number):
        number = number.replace(",", "")
    elif number.count(",") == 1 and "." not in number:
        number = number.replace(",", ".")
    try:
        value = float(number)
    except ValueError:  # "1__0", "1,2,3": separators in no pattern we can read
        raise ValueError(f"{match['number']!r} is not a number we can read; write it as "
                         f"11176512, 11,176,512 or 2.5") from None
    if match["denominator"]:
        if not float(match["denominator"]):
            raise ValueError(f"{text.strip()!r} divides by zero")
        value /= float(match["denominator"])
    if not math.isfinite(value):
        raise ValueError(f"{text.strip()!r} is not a finite number")
    return value, match["unit"]


def as_number(answer: Any) -> tuple[float, str] | str:
    """(value, unit) or the reason the answer is not a number."""
    if isinstance(answer, bool):
        return "True/False is not a number"
    if hasattr(answer, "item") and not isinstance(answer, numbers.Real):
        try:
            answer = answer.item()  # a one-element tensor or NumPy scalar
        except (TypeError, ValueError, RuntimeError):
            return f"a {type(answer).__name__} with more than one value is not a number"
    if isinstance(answer, numbers.Real):
        try:
            value = float(answer)
        except OverflowError:  # an int beyond a float's range
            return f"{answer!r} is too large"
        return (value, "") if math.isfinite(value) else f"{answer!r} is not a finite number"
    if isinstance(answer, str):
        if not answer.strip():
            return "the answer is empty"
        try:
            return parse_number(answer)
        except ValueError as error:
            return str(error)
    return f"a {type(answer).__name__} is not a number"
