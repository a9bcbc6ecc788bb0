"""Deterministic stratified train/validation/test splits, optionally keeping groups (e.g. cases) whole."""

from collections import Counter
from collections.abc import Sequence

import numpy as np

SPLIT_NAMES = ("train", "validation", "test")


def stratified_split(
    labels: Sequence[int],
    fractions: Sequence[float] = (0.7, 0.2, 0.1),
    seed: int = 42,
    groups: Sequence | None = None,
) -> dict[str, list[int]]:
    r"""
    Splits sample indices into train, validation and test sets with the class proportions of `labels`.

    Each class is shuffled with `seed` and cut by `fractions` (largest-remainder rounding), so every class with at
    least 3 members (3 groups with `groups`) is in every split; a class of 1 member goes to train, of 2 to train
    and validation. scikit-learn's stratified splitters are not used: they raise on a class with a single member
    or a split smaller than the number of classes, and may leave a small class out of the test split.

    Args:
        labels (`Sequence[int]`):
            Class index of each sample.
        fractions (`Sequence[float]`, *optional*, defaults to `(0.7, 0.2, 0.1)`):
            Train, validation and test fractions summing to 1: train and validation positive, test positive or 0
            (no test split: a run evaluated on its validation split).
        seed (`int`, *optional*, defaults to 42):
            Seed of the shuffle; the same seed gives the same split.
        groups (`Sequence`, *optional*):
            Group of each sample (e.g. a case id shared by the images of one patient): a group's samples all go to
            the same split, groups are stratified by their most common label and `fractions` count groups.

    Returns:
        `dict[str, list[int]]`: sorted sample indices for `"train"`, `"validation"` and `"test"`, disjoint and
        covering all samples.
    """
    fractions = _validate_fractions(fractions)
    labels = [int(label) for label in labels]
    if groups is None:
        groups = range(len(labels))
    elif len(groups) != len(labels):
        raise ValueError(f"groups must have one entry per label: got {len(groups)} groups for {len(labels)} labels.")

    members: dict = {}
    for index, group in enumerate(groups):
        members.setdefault(group, []).append(index)
    group_ids = list(members)
    group_labels = [_majority_label([labels[i] for i in members[group]]) for group in group_ids]

    rng = np.random.default_rng(seed)
    splits = {name: [] for name in SPLIT_NAMES}
    for label in sorted(set(group_labels)):
        class_groups = [g for g, group_label in zip(group_ids, group_labels) if group_label == label]
        shuffled = [class_groups[i] for i in rng.permutation(len(class_groups))]
        start = 0
        for name, count in zip(SPLIT_NAMES, _split_counts(len(shuffled), fractions)):
            splits[name] += [index for group in shuffled[start : start + count] for index in members[group]]
            start += count
    return {name: sorted(indices) for name, indices in splits.items()}


def _validate_fractions(fractions: Sequence[float]) -> np.ndarray:
    fractions = np.asarray(fractions, dtype=float)
    if (
        fractions.shape != (len(SPLIT_NAMES),)
        or (fractions[:2] <= 0).any()
        or fractions[2] < 0
        or not np.isclose(fractions.sum(), 1.0)
    ):
        raise ValueError(
            "fractions must be three numbers (train, validation, test) summing to 1, train and validation positive "
            f"and test positive or 0, got {fractions.tolist()}."
        )
    return fractions


def _majority_label(labels: list[int]) -> int:
    # Ties go to the smallest label, so a group's label does not depend on the order of its samples.
    return min(Counter(labels).items(), key=lambda label_count: (-label_count[1], label_count[0]))[0]


def _split_counts(size: int, fractions: np.ndarray) -> np.ndarray:
    """Largest-remainder counts of `size` items per split, at least one per split of positive fraction when `size`
    allows it."""
    wanted = fractions > 0
    if size < wanted.sum():
        return np.array([1] * size + [0] * (len(fractions) - size))
    ideal = size * fractions
    counts = np.floor(ideal).astype(int)
    largest_remainders = np.argsort(-(ideal - counts), kind="stable")
    counts[largest_remainders[: size - counts.sum()]] += 1
    for split in np.flatnonzero((counts == 0) & wanted):
        counts[split] += 1
        counts[counts.argmax()] -= 1
    return counts
