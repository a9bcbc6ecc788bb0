"""The Herlev reader and its split by source image: no slide image's cells in two splits, the same split for the
same seed, and readable errors for a malformed labels.csv."""

from collections import Counter

import pytest
from PIL import Image

from cervix_hf.data import read_herlev, source_image_split
from cervix_hf.models.cell_classifier import HERLEV_LABELS

from .conftest import SHARED_DATA, require_data

GROUP = {label: "normal" if label.startswith("normal") else "abnormal" for label in HERLEV_LABELS}


def write_layout(root, rows):
    """A Herlev folder: `rows` of (class, source image, binary or None for the right one), one tiny image each."""
    lines = ["path,class,binary,source_image"]
    for number, (label, source, binary) in enumerate(rows):
        (root / label).mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (number % 255, 0, 0)).save(root / label / f"{number}.jpg")
        lines.append(f"{label}/{number}.jpg,{label},{binary or GROUP[label]},{source}")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root


def synthetic_rows(sources_per_class: int = 12):
    # Source images of one to four cells each, of one class (as in Herlev, where no slide image mixes classes).
    return [
        (label, f"{label}-{source}", None)
        for label in HERLEV_LABELS
        for source in range(sources_per_class)
        for _ in range(1 + source % 4)
    ]


def splits_of(records, seed):
    return {name: records.select(indices) for name, indices in source_image_split(records, seed=seed).items()}


@pytest.mark.parametrize("seed", [0, 42, 7])
def test_no_source_image_is_in_two_splits_and_every_cell_is_in_one(tmp_path, seed):
    records = read_herlev(write_layout(tmp_path, synthetic_rows()))
    indices = source_image_split(records, seed=seed)
    assert sorted(i for split in indices.values() for i in split) == list(range(len(records)))
    sources = {name: {records.source_images[i] for i in split} for name, split in indices.items()}
    assert not sources["train"] & sources["validation"]
    assert not sources["train"] & sources["test"]
    assert not sources["validation"] & sources["test"]
    for split in indices.values():  # stratified: every class in every split
        assert {records.labels[i] for i in split} == set(range(7))


def test_same_seed_same_split_another_seed_another(tmp_path):
    records = read_herlev(write_layout(tmp_path, synthetic_rows()))
    assert source_image_split(records, seed=5) == source_image_split(records, seed=5)
    assert source_image_split(records, seed=5) != source_image_split(records, seed=6)


@pytest.mark.parametrize(
    "rows, message",
    [
        ([("koilocytotic", "s1", "abnormal")], "unknown class 'koilocytotic'"),
        ([("normal_columnar", "s1", "abnormal")], "binary is 'abnormal'"),
        ([("severe_dysplastic", " ", None)], "source_image is empty"),
    ],
)
def test_malformed_rows_are_refused_with_the_line(tmp_path, rows, message):
    write_layout(tmp_path, [("light_dysplastic", "s0", None), *rows])
    with pytest.raises(ValueError, match=message) as error:
        read_herlev(tmp_path)
    assert "line 3" in str(error.value)


def test_a_path_outside_the_folder_is_refused(tmp_path):
    root = write_layout(tmp_path / "herlev", [("light_dysplastic", "s0", None)])
    Image.new("RGB", (8, 8)).save(tmp_path / "outside.jpg")
    with open(root / "labels.csv", "a") as handle:
        handle.write("../outside.jpg,light_dysplastic,abnormal,s1\n")
    with pytest.raises(ValueError, match="outside"):
        read_herlev(root)


def test_the_real_herlev_cells_split_by_slide_image():
    records = read_herlev(require_data(SHARED_DATA / "herlev"))
    assert len(records) == 728 and Counter(records.labels)[HERLEV_LABELS.index("light_dysplastic")] == 150
    splits = splits_of(records, seed=42)
    sources = {name: set(split.source_images) for name, split in splits.items()}
    assert not (
        sources["train"] & sources["validation"]
        or sources["train"] & sources["test"]
        or sources["validation"] & sources["test"]
    )
    assert sum(len(split) for split in splits.values()) == 728
    # About 70:20:10 of the slide images.
    total = sum(map(len, sources.values()))
    assert [round(len(sources[name]) / total, 1) for name in ("train", "validation", "test")] == [0.7, 0.2, 0.1]
