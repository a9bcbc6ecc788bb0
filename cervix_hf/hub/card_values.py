"""Value tracking: how a template sees a run's files, and what it printed from them.

The template reads the files only as tracked fields (`ev`, `config`, `processor`, `args`): a string field prints as
itself, but a number can only be printed through the printer's `num`, `pct`, `count` or `val`, and every printed value
is recorded as a [`CardValue`] (which file and key it came from, how it was printed, where it landed in the card), so
that `cervix_hf.hub.card_checks` can read each one back.
"""

import re
from dataclasses import dataclass
from typing import Any

from cervix_hf.hub.card_spec import NOT_AVAILABLE, SOURCE_FILES, ModelCardError, dotted


@dataclass(frozen=True)
class CardValue:
    r"""
    One value a card shows from a run's file, and where it shows it.

    Args:
        source (`str`): `"eval"`, `"config"`, `"processor"` or `"args"` (see `SOURCE_FILES`).
        path (`tuple`): keys (and list indices) of the value in that file.
        style (`str`): how it was printed: `"fixed"` (`digits` decimals), `"percent"`, `"count"`, `"general"`,
            `"text"` or `"bool"`.
        digits (`int` or `None`): decimals of `"fixed"` and `"percent"`.
        start (`int`), end (`int`): where the printed text lies in the card (`card_text[start:end]`).
    """

    source: str
    path: tuple
    style: str
    digits: int | None
    start: int
    end: int

    def describe(self) -> str:
        return f"{SOURCE_FILES[self.source]} {dotted(self.path)}"


class Printer:
    """Prints the template's values as placeholders, remembering what each one is; `substitute` puts the text in."""

    _PLACEHOLDER = re.compile("\ue000(\\d+)\ue001")

    def __init__(self):
        self._printed: list[tuple[str, tuple, str, int | None, str]] = []

    def num(self, field, digits: int = 3) -> str:
        """A number with `digits` decimals (`n/a` for null)."""
        value = self._number(field, "num")
        return self._print(field, "fixed", digits, NOT_AVAILABLE if value is None else f"{value:.{digits}f}")

    def pct(self, field, digits: int = 1) -> str:
        """A fraction as a percentage with `digits` decimals (`n/a` for null)."""
        value = self._number(field, "pct")
        return self._print(field, "percent", digits, NOT_AVAILABLE if value is None else f"{100 * value:.{digits}f}%")

    def count(self, field) -> str:
        """A whole number (e.g. a support stored as 4.0)."""
        value = self._number(field, "count")
        if value is None or not float(value).is_integer():
            raise ModelCardError(f"count() of {field._describe()} needs a whole number, got {value!r}.")
        return self._print(field, "count", None, str(int(value)))

    def val(self, field) -> str:
        """Any value as it is: a whole number, a float to 6 significant digits, a string, yes/no, a list of them."""
        self._check_field(field, "val")
        value = field._value
        if isinstance(value, list):
            return ", ".join(self.val(item) for item in field) or "none"
        if value is None:
            return self._print(field, "text", None, NOT_AVAILABLE)
        if isinstance(value, bool):
            return self._print(field, "bool", None, "yes" if value else "no")
        if isinstance(value, int):
            return self._print(field, "count", None, str(value))
        if isinstance(value, float):
            return self._print(field, "general", None, f"{value:g}")
        if isinstance(value, str):
            return self._print(field, "text", None, value)
        raise ModelCardError(f"val() cannot print {field._describe()}, a {type(value).__name__}.")

    def substitute(self, rendered: str) -> tuple[str, list[CardValue]]:
        pieces, values, position, length = [], [], 0, 0
        for match in self._PLACEHOLDER.finditer(rendered):
            before = rendered[position : match.start()]
            pieces.append(before)
            length += len(before)
            source, path, style, digits, text = self._printed[int(match.group(1))]
            values.append(CardValue(source, path, style, digits, length, length + len(text)))
            pieces.append(text)
            length += len(text)
            position = match.end()
        pieces.append(rendered[position:])
        return "".join(pieces), values

    def _number(self, field, function: str):
        self._check_field(field, function)
        value = field._value
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ModelCardError(f"{function}() of {field._describe()} needs a number, got {value!r}.")
        return value

    @staticmethod
    def _check_field(field, function: str) -> None:
        if not isinstance(field, Field):
            raise ModelCardError(
                f"{function}() was given {field!r}, which no run file holds: a card prints only values read from "
                "the run's files (ev, config, processor, args)."
            )

    def _print(self, field: "Field", style: str, digits: int | None, text: str) -> str:
        self._printed.append((field._source, field._path, style, digits, text))
        return f"\ue000{len(self._printed) - 1}\ue001"


class Field:
    """
    A value of one of the run's files, as the template sees it: keys and indices give more fields (a missing key is
    an error naming the file; `.get(key)` reads a missing one as null); a string prints as itself; a number prints only
    through the printer's functions. `is_none`, `equals(x)` and truthiness serve conditions.
    """

    def __init__(self, printer: Printer, source: str, path: tuple, value: Any):
        self._printer, self._source, self._path, self._value = printer, source, path, value

    def __getattr__(self, name: str) -> "Field":
        if name.startswith("_"):
            raise AttributeError(name)
        return self[name]

    def __getitem__(self, key) -> "Field":
        if isinstance(key, Field):  # e.g. a label name read from the file, used as a key
            key = key._value
        value = self._value
        if isinstance(value, dict) and key in value:
            return Field(self._printer, self._source, self._path + (key,), value[key])
        if isinstance(value, list) and isinstance(key, int) and -len(value) <= key < len(value):
            return Field(self._printer, self._source, self._path + (key % len(value),), value[key])
        raise ModelCardError(f"{SOURCE_FILES[self._source]} has no {dotted(self._path + (key,))}.")

    def get(self, key) -> "Field":
        """The value at `key`, or null (printed as n/a) when the file has no such key."""
        if isinstance(self._value, dict) and key in self._value:
            return self[key]
        return Field(self._printer, self._source, self._path + (key,), None)

    def items(self) -> list[tuple[str, "Field"]]:
        return [(key, self[key]) for key in self._mapping()]

    def keys(self) -> list[str]:
        return list(self._mapping())

    @property
    def is_none(self) -> bool:
        return self._value is None

    def equals(self, other) -> bool:
        return self._value == (other._value if isinstance(other, Field) else other)

    def __iter__(self):
        if isinstance(self._value, dict):
            return iter(self.keys())
        if isinstance(self._value, list):
            return iter([self[index] for index in range(len(self._value))])
        raise ModelCardError(f"{self._describe()} is not a list or a mapping: it cannot be looped over.")

    def __bool__(self) -> bool:
        return bool(self._value)

    def __str__(self) -> str:
        if isinstance(self._value, str):
            return self._printer.val(self)
        if isinstance(self._value, bool):
            return self._printer.val(self)
        raise ModelCardError(
            f"The template prints {self._describe()} ({self._value!r}) directly: print numbers through num(), pct(), "
            "count() or val() so the card can be checked against the file."
        )

    def _mapping(self) -> dict:
        if not isinstance(self._value, dict):
            raise ModelCardError(f"{self._describe()} is not a mapping.")
        return self._value

    def _describe(self) -> str:
        return f"{SOURCE_FILES[self._source]} {dotted(self._path) or '(the whole file)'}"
