import csv
import logging
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest
import torch
from PIL import Image

from cervix_hf.data import (
    INTEL_MOBILEODT_LABELS,
    ImageClassificationDataset,
    class_counts,
    compute_class_weights,
    is_intel_mobileodt,
    read_iarc_atlas_types,
    read_image_folder,
    read_intel_mobileodt,
    stratified_split,
)

from .conftest import SHARED_DATA, require_data

SAMPLE_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "intel-mobileodt-sample"
SOLUTION_HEADER = ["image_name", "Type_1", "Type_2", "Type_3"]
# (test image, label) of the fixture's test/ folder.
TEST_LABELS = [("0.jpg", 1), ("1.jpg", 0), ("2.jpg", 2)]


def _write_image(path: Path, color=(200, 80, 60), size=(8, 6)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)


def _write_solution_csv(root: Path, rows, separator=",", bom=False):
    lines = [separator.join(SOLUTION_HEADER)] + [separator.join(row) for row in rows]
    text = ("\ufeff" if bom else "") + "\r\n".join(lines) + "\r\n"
    (root / "solution_stg1_release.csv").write_text(text, encoding="utf-8", newline="")


def _one_hot_rows(labels):
    return [[name] + ["1" if label == k else "0" for k in range(3)] for name, label in labels]


def _write_competition_layout(root: Path, separator=",", bom=False):
    for name in ["train/Type_1/10.jpg", "train/Type_1/9.jpg", "train/Type_2/11.jpg", "train/Type_3/12.jpg"]:
        _write_image(root / name)
    _write_image(root / "additional_Type_1_v2/Type_1/100.jpg")  # nested, as in the competition archives
    _write_image(root / "additional_Type_2_v2/200.jpg")  # flat, as in some re-uploads
    for name, _ in TEST_LABELS:
        _write_image(root / "test" / name)
    _write_solution_csv(root, _one_hot_rows(TEST_LABELS), separator, bom)
    # Neither is an image: a macOS resource fork and a note.
    (root / "train/Type_1/._9.jpg").write_bytes(b"\x00\x05\x16\x07")
    (root / "train/Type_1/notes.txt").write_text("not an image")


def _relative(records, root):
    return [Path(path).relative_to(root).as_posix() for path in records.paths]


@pytest.mark.parametrize("separator, bom", [(";", True), (",", False)], ids=["semicolon+BOM", "comma"])
def test_reads_the_competition_layout(tmp_path, separator, bom):
    _write_competition_layout(tmp_path, separator, bom)
    records = read_intel_mobileodt(tmp_path)
    assert records.label_names == ["Type_1", "Type_2", "Type_3"]
    assert _relative(records, tmp_path) == [
        "train/Type_1/10.jpg",
        "train/Type_1/9.jpg",
        "train/Type_2/11.jpg",
        "train/Type_3/12.jpg",
        "additional_Type_1_v2/Type_1/100.jpg",
        "additional_Type_2_v2/200.jpg",
        "test/0.jpg",
        "test/1.jpg",
        "test/2.jpg",
    ]
    assert records.labels == [0, 0, 1, 2, 0, 1, 1, 0, 2]
    assert records.subsets == ["train"] * 4 + ["additional"] * 2 + ["test"] * 3
    assert len(records) == 9


def test_reads_only_the_requested_subsets_in_their_order(tmp_path):
    _write_competition_layout(tmp_path)
    records = read_intel_mobileodt(tmp_path, subsets=("test", "train"))
    assert records.subsets == ["test"] * 3 + ["train"] * 4
    with pytest.raises(ValueError, match="subsets"):
        read_intel_mobileodt(tmp_path, subsets=("train", "validation"))


def test_absent_subsets_are_skipped(tmp_path):
    _write_image(tmp_path / "train/Type_3/1.jpg")
    records = read_intel_mobileodt(tmp_path)
    assert records.labels == [2] and records.subsets == ["train"]


def test_test_images_without_the_csv_are_skipped_with_a_warning(tmp_path, caplog):
    _write_competition_layout(tmp_path)
    (tmp_path / "solution_stg1_release.csv").unlink()
    with caplog.at_level(logging.WARNING):
        records = read_intel_mobileodt(tmp_path)
    assert "test" not in records.subsets
    assert "solution_stg1_release.csv" in caplog.text


def test_a_root_without_images_names_the_root_and_the_layout(tmp_path):
    (tmp_path / "train" / "Type_1").mkdir(parents=True)
    with pytest.raises(ValueError, match="train/Type_N") as error:
        read_intel_mobileodt(tmp_path)
    assert str(tmp_path) in str(error.value)


@pytest.mark.parametrize(
    "bad_row",
    [
        ["1.jpg", "1", "1", "0"],
        ["1.jpg", "0", "0", "0"],
        ["1.jpg", "0", "yes", "0"],
        ["1.jpg", "0", "1"],
        ["7.jpg", "1", "0", "0"],
    ],
    ids=["two ones", "no one", "not a number", "missing column", "unknown image"],
)
def test_a_malformed_csv_row_names_the_file_and_line(tmp_path, bad_row):
    _write_competition_layout(tmp_path, separator=";", bom=True)
    rows = _one_hot_rows(TEST_LABELS)
    rows[1] = bad_row  # line 3: the header is line 1
    _write_solution_csv(tmp_path, rows, separator=";", bom=True)
    with pytest.raises(ValueError, match="line 3") as error:
        read_intel_mobileodt(tmp_path)
    assert str(tmp_path / "solution_stg1_release.csv") in str(error.value)


def test_a_test_image_without_a_csv_row_is_reported(tmp_path):
    _write_competition_layout(tmp_path)
    _write_image(tmp_path / "test" / "3.jpg")
    with pytest.raises(ValueError, match="3.jpg"):
        read_intel_mobileodt(tmp_path)


def test_a_wrong_csv_header_is_reported(tmp_path):
    _write_competition_layout(tmp_path)
    (tmp_path / "solution_stg1_release.csv").write_text("name,label\n0.jpg,Type_2\n", encoding="utf-8")
    with pytest.raises(ValueError, match="header"):
        read_intel_mobileodt(tmp_path)


def test_read_image_folder(tmp_path):
    for name in ["normal/b.png", "normal/A.JPG", "abnormal/x.tif", "abnormal/y.bmp", "empty_dir/readme.txt"]:
        if name.endswith(".txt"):
            (tmp_path / name).parent.mkdir()
            (tmp_path / name).write_text("no images here")
        else:
            _write_image(tmp_path / name)
    records = read_image_folder(tmp_path)
    assert records.label_names == ["abnormal", "normal"]
    assert _relative(records, tmp_path) == ["abnormal/x.tif", "abnormal/y.bmp", "normal/A.JPG", "normal/b.png"]
    assert records.labels == [0, 0, 1, 1]
    assert records.subsets == [tmp_path.name] * 4

    records = read_image_folder(tmp_path, label_names=["normal", "abnormal", "unseen"])
    assert records.labels == [1, 1, 0, 0]
    assert records.select([3, 0]).paths == [records.paths[3], records.paths[0]]

    with pytest.raises(ValueError, match="root/<class name>"):
        read_image_folder(tmp_path / "empty_dir")
    with pytest.raises(ValueError, match="does not exist"):
        read_image_folder(tmp_path / "missing")


@pytest.mark.skipif(not SAMPLE_DIR.is_dir(), reason=f"real Intel & MobileODT sample not found at {SAMPLE_DIR}")
def test_reads_the_real_sample():
    records = read_intel_mobileodt(SAMPLE_DIR)
    assert len(records) == 120
    assert class_counts(records.labels, records.label_names) == {"Type_1": 40, "Type_2": 40, "Type_3": 40}
    assert set(records.subsets) == {"train"}
    for path, label in zip(records.paths, records.labels):
        assert Path(path).parent.name == INTEL_MOBILEODT_LABELS[label]
    assert records.paths == sorted(records.paths)

    splits = stratified_split(records.labels)
    assert {name: len(indices) for name, indices in splits.items()} == {"train": 84, "validation": 24, "test": 12}
    for indices in splits.values():
        assert set(Counter(records.labels[i] for i in indices).values()) == {len(indices) // 3}


def test_a_folder_of_only_the_test_photos_and_their_csv_is_the_competition_layout(tmp_path):
    for name, _ in TEST_LABELS:
        _write_image(tmp_path / "test" / name)
    _write_solution_csv(tmp_path, _one_hot_rows(TEST_LABELS), separator=";", bom=True)
    assert is_intel_mobileodt(tmp_path)  # not a <root>/<class>/ folder whose one class is "test"
    records = read_intel_mobileodt(tmp_path)
    assert _relative(records, tmp_path) == ["test/0.jpg", "test/1.jpg", "test/2.jpg"]
    assert records.labels == [label for _, label in TEST_LABELS]
    (tmp_path / "solution_stg1_release.csv").unlink()
    assert not is_intel_mobileodt(tmp_path)


ATLAS_CSV_COLUMNS = ["case_number", "case_id", "age", "hpv_status", "provisional_diagnosis", "histopathology_diagnosis"]


def test_the_atlas_as_cervix_types_one_photo_after_acetic_acid_per_case(tmp_path):
    photos = sorted(require_data(SHARED_DATA / "intel-mobileodt-sample").glob("train/Type_*/*.jpg"))[::10]
    views = {  # case folder: its views, each a real JPEG
        "images_low_grade/case_AAA1": [
            "2_After_normal_saline.jpg",
            "5_After_acetic_acid.jpg",
            "3_After_acetic_acid.jpg",
            "4_After_acetic_acid_with_green_filter.jpg",
        ],
        "images_low_grade/case_AAA2": ["1_After_normal_saline.jpg", "2_After_Lugol\u2019s_iodine.jpg"],
        "images_high_grade/case_AAB1": ["1_After_acetic_acid.jpg"],
        "images_high_grade/case_AAB2": ["1_After_acetic_acid.jpg"],
        "images_high_grade/case_AAB3": ["2_After_acetic_acid.jpg"],
    }
    copies = iter(photos)
    for case, names in views.items():
        (tmp_path / case).mkdir(parents=True)
        for name in names:
            shutil.copy(next(copies), tmp_path / case / name)
    diagnoses = {
        "low": [
            ("AAA1", "Type 2 transformation zone; low-grade squamous intraepithelial lesion (LSIL)."),
            ("AAA2", "Type 1 transformation zone; CIN1 with SPI."),
        ],
        "high": [
            ("AAB1", "type 3 Transformation Zone; leukoplakia."),
            ("AAB2", "High-grade squamous intraepithelial lesion (HSIL) on a cervical polyp."),
        ],
    }  # AAB3 is in no csv
    for grade, rows in diagnoses.items():
        with (tmp_path / f"colposcopy_cases_{grade}_grade.csv").open("w", encoding="utf-8", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(ATLAS_CSV_COLUMNS)
            writer.writerows([n, case, 40, "Positive", text, "CIN1."] for n, (case, text) in enumerate(rows))

    records = read_iarc_atlas_types(tmp_path)
    assert records.label_names == ["Type_1", "Type_2", "Type_3"]
    assert _relative(records, tmp_path) == [
        "images_low_grade/case_AAA1/3_After_acetic_acid.jpg",  # the first taken, not a green-filter view
        "images_high_grade/case_AAB1/1_After_acetic_acid.jpg",
    ]
    assert records.labels == [1, 2] and records.subsets == ["images_low_grade", "images_high_grade"]
    assert records.skipped_cases == [
        ("AAA2", "no acetic acid view"),
        ("AAB2", "no transformation-zone type"),
        ("AAB3", "no transformation-zone type"),
    ]
    assert records.skipped == {"no acetic acid view": 1, "no transformation-zone type": 2}


def test_the_real_atlas_as_cervix_types_follows_each_case_s_csv_row():
    atlas = require_data(SHARED_DATA / "iarc-colposcopy-atlas")
    expected = {}  # case id: type number, read from the csv text itself
    for csv_path in sorted(atlas.glob("colposcopy_cases_*_grade.csv")):
        for row in csv.DictReader(csv_path.read_text(encoding="utf-8-sig").splitlines()):
            found = re.match(r"Type ([123]) transformation zone", row["provisional_diagnosis"])
            if found:
                expected[row["case_id"]] = int(found.group(1))
    cases = atlas.glob("images_*_grade/case_*")
    with_view = {folder.name[5:] for folder in cases if any(folder.glob("*_After_acetic_acid.jpg"))}
    records = read_iarc_atlas_types(atlas)
    read = {Path(path).parent.name[5:]: label + 1 for path, label in zip(records.paths, records.labels)}
    assert read == {case: number for case, number in expected.items() if case in with_view}
    assert len(read) == 49 and sorted(read.values()) == sorted(expected[case] for case in read)
    assert all(Path(path).name.endswith("_After_acetic_acid.jpg") for path in records.paths)
    assert sum(records.skipped.values()) == 52 - 49 == len(records.skipped_cases)


def test_dataset_loads_transforms_then_processes(tmp_path):
    paths = [tmp_path / "red.png", tmp_path / "blue.jpg"]
    _write_image(paths[0], (255, 0, 0))
    _write_image(paths[1], (0, 0, 255))
    calls = []

    def processor(images, return_tensors):
        calls.append((len(images), images[0].mode, images[0].size, return_tensors))
        first_pixels = [list(image.getpixel((0, 0))) for image in images]
        return {"pixel_values": torch.tensor(first_pixels, dtype=torch.float32)}

    def rotate(image):
        return image.rotate(90, expand=True)

    dataset = ImageClassificationDataset([str(path) for path in paths], [2, 0], processor, transform=rotate)
    assert len(dataset) == 2
    item = dataset[0]
    assert item["labels"] == 2
    assert item["pixel_values"].tolist() == [255.0, 0.0, 0.0]
    assert calls == [(1, "RGB", (6, 8), "pt")]  # the 8x6 image, rotated before the processor
    with pytest.raises(ValueError, match="same length"):
        ImageClassificationDataset([str(paths[0])], [0, 1], processor)


def _assert_disjoint_and_covering(splits, size):
    indices = [index for split in splits.values() for index in split]
    assert sorted(indices) == list(range(size))


def test_stratified_split_sizes_and_proportions():
    labels = [0] * 170 + [1] * 530 + [2] * 300  # the competition's ~17% / 53% / 30%
    splits = stratified_split(labels)
    assert list(splits) == ["train", "validation", "test"]
    _assert_disjoint_and_covering(splits, len(labels))
    assert {name: len(indices) for name, indices in splits.items()} == {"train": 700, "validation": 200, "test": 100}
    for name, fraction in [("train", 0.7), ("validation", 0.2), ("test", 0.1)]:
        counts = Counter(labels[i] for i in splits[name])
        for label, total in [(0, 170), (1, 530), (2, 300)]:
            assert abs(counts[label] - fraction * total) <= 1


def test_stratified_split_is_deterministic_for_a_seed():
    labels = [i % 3 for i in range(60)]
    assert stratified_split(labels, seed=7) == stratified_split(labels, seed=7)
    assert stratified_split(labels, seed=7) != stratified_split(labels, seed=8)


def test_stratified_split_small_classes():
    labels = [0] * 50 + [1] * 3 + [2] * 2 + [3]
    splits = stratified_split(labels)
    _assert_disjoint_and_covering(splits, len(labels))
    for indices in splits.values():
        assert {0, 1} <= {labels[i] for i in indices}  # 3 members are enough to be in every split
    assert 55 in splits["train"]  # the single member of class 3
    assert [labels[i] for i in splits["train"] + splits["validation"]].count(2) == 2


def test_stratified_split_keeps_groups_whole():
    # 40 cases of 1 to 3 images each, labelled per case: 20 cases per class.
    groups, labels = [], []
    for case in range(40):
        for _ in range(1 + case % 3):
            groups.append(f"case_{case}")
            labels.append(case % 2)
    splits = stratified_split(labels, groups=groups)
    _assert_disjoint_and_covering(splits, len(labels))
    split_of_group = {}
    for name, indices in splits.items():
        for index in indices:
            assert split_of_group.setdefault(groups[index], name) == name
        assert {labels[i] for i in indices} == {0, 1}
    assert Counter(split_of_group.values()) == {"train": 28, "validation": 8, "test": 4}


@pytest.mark.parametrize("fractions", [(0.5, 0.5), (0.7, 0.0, 0.3), (0.0, 0.7, 0.3), (0.7, 0.2, 0.2), (0.8, 0.3, -0.1)])
def test_stratified_split_rejects_bad_fractions(fractions):
    with pytest.raises(ValueError, match="fractions"):
        stratified_split([0, 1, 2] * 5, fractions=fractions)


def test_a_test_fraction_of_zero_leaves_the_test_split_empty_and_keeps_the_class_proportions():
    labels = [0] * 250 + [1] * 781 + [2] * 450  # the competition's training set
    splits = stratified_split(labels, fractions=(0.8, 0.2, 0.0), seed=3)
    _assert_disjoint_and_covering(splits, len(labels))
    assert splits["test"] == []
    # 20% of each class, rounded: 50, 156.2 -> 156, 90
    assert Counter(labels[i] for i in splits["validation"]) == {0: 50, 1: 156, 2: 90}


def test_stratified_split_rejects_groups_of_another_length():
    with pytest.raises(ValueError, match="groups"):
        stratified_split([0, 1, 2], groups=["a", "b"])


def test_class_weights():
    labels = [0] * 17 + [1] * 53 + [2] * 30
    # 1/17, 1/53, 1/30 = 0.0588235, 0.0188679, 0.0333333; their mean 0.0370083; divided by it:
    expected = [1.589468, 0.509826, 0.900706]
    weights = compute_class_weights(labels, num_classes=3)
    assert weights.dtype == torch.float32
    assert weights.tolist() == pytest.approx(expected, abs=1e-5)
    assert weights.mean().item() == pytest.approx(1.0)
    assert compute_class_weights([0, 1, 1, 0], 2).tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match=r"\[2\]"):
        compute_class_weights([0, 1], num_classes=3)
    with pytest.raises(ValueError, match="class indices"):
        compute_class_weights([0, 3], num_classes=3)


def test_class_counts_include_empty_classes():
    assert class_counts([1, 1, 0], ["Type_1", "Type_2", "Type_3"]) == {"Type_1": 1, "Type_2": 2, "Type_3": 0}
