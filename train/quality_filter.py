"""The quality gate applied to a whole dataset before training: drop (or list) the blurry and unreadable photos."""

import logging
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from os import PathLike
from typing import Literal

from cervix_hf.io.images import ImageLoadError, load_image
from cervix_hf.models.colponet.image_quality import (
    DEFAULT_FFT_THRESHOLD,
    DEFAULT_LAPLACIAN_THRESHOLD,
    ImageQualityReport,
    assess_image_quality,
)

_LOGGER = logging.getLogger(__name__)

PathType = str | PathLike


@dataclass
class QualityFilterResult:
    """
    What the quality gate kept and rejected.

    Args:
        kept_paths (`list`): the paths kept, in input order (every path in `mode="list"`).
        kept_labels (`list`, *optional*): their labels, when labels were given.
        rejected (`list[tuple[path, ImageQualityReport | ImageLoadError]]`): each rejected path (in `mode="list"`:
            each path that would be rejected) with the gate's report, or the `ImageLoadError` when the file could
            not be loaded; `str()` of either is a readable sentence.
        num_images (`int`): how many paths were checked.
        num_blurry (`int`): how many were rejected by the blur scores.
        num_unreadable (`int`): how many could not be loaded.
        per_label (`dict`): for each label, `{"total": n, "rejected": k}`; empty when no labels were given.
    """

    kept_paths: list[PathType]
    kept_labels: list[Hashable] | None
    rejected: list[tuple[PathType, ImageQualityReport | ImageLoadError]]
    num_images: int
    num_blurry: int
    num_unreadable: int
    per_label: dict[Hashable, dict[str, int]] = field(default_factory=dict)

    @property
    def num_rejected(self) -> int:
        return len(self.rejected)


def filter_by_quality(
    paths: Sequence[PathType],
    labels: Sequence[Hashable] | None = None,
    *,
    laplacian_threshold: float = DEFAULT_LAPLACIAN_THRESHOLD,
    fft_threshold: float = DEFAULT_FFT_THRESHOLD,
    mode: Literal["drop", "list"] = "drop",
    logger: logging.Logger | None = None,
) -> QualityFilterResult:
    """
    Runs the ColpoNet quality gate (`assess_image_quality`) on every image and drops the rejected ones.

    Args:
        paths (`Sequence[str | os.PathLike]`): the image files.
        labels (`Sequence`, *optional*): one label per path, kept aligned with the kept paths and counted per class.
        laplacian_threshold (`float`, *optional*, defaults to `DEFAULT_LAPLACIAN_THRESHOLD`):
            Minimum Laplacian variance accepted.
        fft_threshold (`float`, *optional*, defaults to `DEFAULT_FFT_THRESHOLD`): minimum FFT blur score accepted.
        mode (`str`, *optional*, defaults to `"drop"`):
            `"drop"` removes rejected images; `"list"` keeps every image and only reports what would be rejected.
        logger (`logging.Logger`, *optional*): where the summary is logged; this module's logger by default.

    Files that cannot be loaded are rejected with their `ImageLoadError`, never raised.
    """
    if mode not in ("drop", "list"):
        raise ValueError(f"mode must be 'drop' or 'list', got {mode!r}")
    if labels is not None and len(labels) != len(paths):
        raise ValueError(f"labels must have one entry per path: got {len(labels)} labels for {len(paths)} paths")
    logger = logger or _LOGGER

    kept_paths, kept_labels, rejected = [], [], []
    totals, rejections = Counter(), Counter()
    for index, path in enumerate(paths):
        try:
            verdict = assess_image_quality(
                load_image(path), laplacian_threshold=laplacian_threshold, fft_threshold=fft_threshold
            )
            is_rejected = not verdict.is_acceptable
        except ImageLoadError as error:
            verdict, is_rejected = error, True
        label = labels[index] if labels is not None else None
        totals[label] += 1
        if is_rejected:
            rejected.append((path, verdict))
            rejections[label] += 1
        if not is_rejected or mode == "list":
            kept_paths.append(path)
            kept_labels.append(label)

    num_unreadable = sum(isinstance(verdict, ImageLoadError) for _, verdict in rejected)
    result = QualityFilterResult(
        kept_paths=kept_paths,
        kept_labels=kept_labels if labels is not None else None,
        rejected=rejected,
        num_images=len(paths),
        num_blurry=len(rejected) - num_unreadable,
        num_unreadable=num_unreadable,
        per_label=(
            {label: {"total": totals[label], "rejected": rejections[label]} for label in totals}
            if labels is not None
            else {}
        ),
    )
    _log_summary(result, mode, logger)
    return result


def _log_summary(result: QualityFilterResult, mode: str, logger: logging.Logger) -> None:
    breakdown = f"{result.num_blurry} blurry, {result.num_unreadable} unreadable"
    if mode == "drop":
        logger.info(
            f"quality gate: kept {len(result.kept_paths)} of {result.num_images} images, "
            f"rejected {result.num_rejected} ({breakdown})"
        )
    else:
        logger.info(
            f"quality gate (list mode, nothing dropped): {result.num_rejected} of {result.num_images} images "
            f"would be rejected ({breakdown})"
        )
    rejected = "rejected" if mode == "drop" else "would be rejected"
    for label, counts in result.per_label.items():
        logger.info(f"quality gate: class {label}: {counts['rejected']} of {counts['total']} images {rejected}")
    for path, verdict in result.rejected:
        logger.debug(f"quality gate: {path}: {verdict}")


__all__ = ["QualityFilterResult", "filter_by_quality"]
