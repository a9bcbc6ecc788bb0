"""The checks of a rendered model card against the run's files as they are on disk: every printed value read back,
the model-index metadata parsed back, required sections present and not empty, and no number in a table that no
file gave. The evaluation file's own consistency is its contract's (`cervix_hf.evaluation.results`).
"""

import math
import re
from bisect import bisect_right
from pathlib import Path

from huggingface_hub import ModelCard

from cervix_hf.evaluation.results import eval_results_problems
from cervix_hf.hub.card_spec import (
    INDEX_DIGITS,
    NOT_AVAILABLE,
    REQUIRED_SECTIONS,
    ModelCardError,
    dotted,
    lookup_or_none,
    read_sources,
)
from cervix_hf.hub.card_values import CardValue
from cervix_hf.io.files import EVAL_RESULTS_FILE
from cervix_hf.registry import FAMILIES_BY_TYPE


def check_model_card(card_text: str, values: list[CardValue], model_dir) -> None:
    r"""
    Checks a rendered card against the run's files as they are on disk now.

    Args:
        card_text (`str`):
            The card, YAML metadata included (`str(card)`).
        values (`list[CardValue]`):
            What the template printed from the files, and where (recorded while rendering).
        model_dir (`str` or `Path`):
            The folder whose files the card was rendered from.

    Raises:
        [`ModelCardError`]: listing every problem found.
    """
    sources = read_sources(Path(model_dir))
    model_type = sources["config"].get("model_type")
    problems = eval_results_problems(sources["eval"])
    problems += _value_problems(card_text, values, sources)
    problems += _index_problems(card_text, sources["eval"], model_type)
    record = FAMILIES_BY_TYPE.get(model_type)
    problems += _section_problems(card_text, REQUIRED_SECTIONS + (record.card_sections if record else ()))
    problems += _table_problems(card_text, values)
    if problems:
        raise ModelCardError(f"The model card of {model_dir} is wrong:\n- " + "\n- ".join(problems))


def check_eval_results(eval_results: dict, name: str = EVAL_RESULTS_FILE) -> None:
    r"""
    Checks that the numbers of an `eval_results.json` agree with each other: class counts, supports, per-class
    and averaged rates and accuracy against the confusion matrix (classifiers); mean AP and recall against the
    per-class ones and ground-truth boxes against the test split (detector); [`check_binary_consistency`] and the
    test split's class counts (pre/post fusion). `name` names the file in the error.

    Raises:
        [`ModelCardError`]: listing every contradiction.
    """
    problems = eval_results_problems(eval_results)
    if problems:
        raise ModelCardError(f"{name} contradicts itself:\n- " + "\n- ".join(problems))


def _value_problems(card_text: str, values: list[CardValue], sources: dict) -> list[str]:
    problems = []
    for value in values:
        shown = card_text[value.start : value.end]
        expected = lookup_or_none(sources[value.source], value.path)  # a missing key reads as null
        if not _agrees(shown, expected, value.style, value.digits):
            line = card_text.count("\n", 0, value.start) + 1
            problems.append(f"line {line} shows {shown!r} for {value.describe()}, but the file holds {expected!r}")
    return problems


def _agrees(shown: str, expected, style: str, digits: int | None) -> bool:
    """Whether the card's text `shown` is a faithful print of the file's value `expected`."""
    if expected is None:
        return shown == NOT_AVAILABLE
    if style == "text":
        return shown == str(expected)
    if style == "bool":
        return shown == ("yes" if expected else "no")
    if isinstance(expected, bool) or not isinstance(expected, (int, float)):
        return False
    if style == "percent":
        if not shown.endswith("%"):
            return False
        shown, expected = shown[:-1], 100 * expected
    try:
        number = float(shown)
    except ValueError:
        return False
    if style == "count":
        return shown.lstrip("-").isdigit() and number == expected
    if style == "general":
        return math.isclose(number, expected, rel_tol=1e-5, abs_tol=1e-12)
    # "fixed" and "percent": the file's value, rounded to the digits shown
    return abs(number - expected) <= 0.5 * 10.0**-digits * (1 + 1e-9) + 1e-12


def _index_problems(card_text: str, eval_results: dict, model_type: str) -> list[str]:
    try:
        card = ModelCard(card_text)
    except ValueError as err:
        return [f"the card's metadata cannot be parsed: {err}"]
    shown = {result.metric_type: result.metric_value for result in card.data.eval_results or []}
    problems = []
    record = FAMILIES_BY_TYPE.get(model_type)
    for metric in record.index_metrics if record else ():
        metric_type, path = metric.type, metric.path
        expected, value = lookup_or_none(eval_results, path), shown.get(metric_type)
        if expected is None:
            if metric_type in shown:
                problems.append(f"model-index has {metric_type} but {EVAL_RESULTS_FILE} {dotted(path)} is null")
        elif metric_type not in shown:
            problems.append(f"model-index lacks {metric_type} ({EVAL_RESULTS_FILE} {dotted(path)})")
        elif not isinstance(value, (int, float)) or abs(value - expected) > 0.5 * 10.0**-INDEX_DIGITS:
            problems.append(
                f"model-index shows {metric_type} = {shown[metric_type]!r}, but {EVAL_RESULTS_FILE} "
                f"{dotted(path)} holds {expected!r}"
            )
    return problems


_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)


def _body_lines(card_text: str) -> list[tuple[int, str, bool]]:
    """(offset, line, inside a code block) for each line of the card after its metadata block."""
    lines, offset, fenced = [], 0, False
    body_start = 0
    if card_text.startswith("---"):
        end = card_text.find("\n---", 3)
        body_start = card_text.find("\n", end + 1) + 1 if end != -1 else 0
    for line in card_text.splitlines(keepends=True):
        if offset >= body_start:
            if line.lstrip().startswith("```"):
                lines.append((offset, line, True))
                fenced = not fenced
            else:
                lines.append((offset, line, fenced))
        offset += len(line)
    return lines


def _section_problems(card_text: str, required: tuple[str, ...]) -> list[str]:
    headings = []  # (index in lines, level, title)
    lines = _body_lines(card_text)
    for index, (_, line, fenced) in enumerate(lines):
        match = None if fenced else _HEADING.match(line.rstrip("\n"))
        if match:
            headings.append((index, len(match.group(1)), match.group(2)))
    problems = []
    for title in required:
        found = [(i, level) for i, level, name in headings if name == title]
        if not found:
            problems.append(f"the required section '{title}' is missing")
            continue
        start, level = found[0]
        end = next((i for i, other, _ in headings if i > start and other <= level), len(lines))
        content = "".join(
            line
            for i, (_, line, fenced) in enumerate(lines[start + 1 : end], start + 1)
            if fenced or not _HEADING.match(line.rstrip("\n"))
        )
        content = _COMMENT.sub("", content)
        meaningful = [line for line in content.splitlines() if line.strip() and not _is_table_rule(line)]
        if not meaningful:
            problems.append(f"the required section '{title}' is empty")
    return problems


_NUMBER = re.compile(r"(?<![\w.\-])[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?%?(?![\w.])")


def _table_problems(card_text: str, values: list[CardValue]) -> list[str]:
    """Tables need rows, and every number in a table row must be a value printed from a run's file."""
    starts = [value.start for value in values]
    ends = [value.end for value in values]

    def printed(position: int) -> bool:
        index = bisect_right(starts, position) - 1
        return index >= 0 and position < ends[index]

    problems, table, heading = [], [], "the card"
    for offset, line, fenced in _body_lines(card_text) + [(len(card_text), "", False)]:
        is_row = not fenced and line.lstrip().startswith("|")
        if is_row:
            table.append((offset, line))
            continue
        if table:
            rows = list(table[2:]) if len(table) > 1 and _is_table_rule(table[1][1]) else table
            if not rows:
                problems.append(f"a table in section '{heading}' has no rows")
            for row_offset, row in rows:
                for match in _NUMBER.finditer(row):
                    if not printed(row_offset + match.start()):
                        line_number = card_text.count("\n", 0, row_offset) + 1
                        problems.append(
                            f"line {line_number}: the number {match.group()!r} in a table of section '{heading}' "
                            "comes from no run file"
                        )
            table = []
        match = None if fenced else _HEADING.match(line.rstrip("\n"))
        if match:
            heading = match.group(2)
    return problems


def _is_table_rule(line: str) -> bool:
    return bool(re.fullmatch(r"\s*\|?(\s*:?-{3,}:?\s*\|)+\s*:?-*:?\s*\|?\s*", line.rstrip("\n")))
