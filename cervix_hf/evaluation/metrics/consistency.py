"""What the models' evaluation checks share: comparing a number of an evaluation file with the one the rest of the
file implies, and collecting every disagreement as a sentence a reader can act on.

Imports nothing of cervix_hf: `evaluate.load` copies `classification.py` and what it imports out of the package.
"""

import math
from collections.abc import Callable


def expecter(problems: list[str]) -> Callable[[str, object, object], None]:
    """`expect(path, found, expected)` appends a problem to `problems` when `found` is not `expected` (1e-9 apart)."""

    def expect(path: str, found, expected) -> None:
        same = (found is None and expected is None) or (
            found is not None
            and expected is not None
            and math.isclose(float(found), float(expected), rel_tol=1e-9, abs_tol=1e-9)
        )
        if not same:
            problems.append(f"{path} is {found!r}, but the rest of the file gives {expected!r}")

    return expect


def safe_ratio(numerator: float, denominator: float) -> float:
    """scikit-learn's `zero_division=0`."""
    return numerator / denominator if denominator else 0.0
