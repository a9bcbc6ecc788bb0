import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from cervix_hf.data import (
    PairDataset,
    PairRecord,
    PairRecords,
    case_level_split,
    class_counts,
    read_iarc_atlas,
    read_pairs_csv,
)
from cervix_hf.io.images import ImageLoadError
from train.presets import paired_train_transform

IARC_ATLAS = Path(__file__).resolve().parents[2] / "shared" / "data" / "iarc-colposcopy-atlas"
# The atlas's Lugol file names hold U+0092 where the apostrophe was, as in "6_After_Lugol\x92s_iodine.jpg".
LUGOL_NAME = "After_Lugol\x92s_iodine.jpg"
IARC_CSV_HEADER = "case_number,case_id,histopathology_diagnosis\n"


def _write_image(path: Path, color=(200, 80, 60), size=(12, 8)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)


def _write_csv(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def iarc_atlas() -> Path:
    if not IARC_ATLAS.is_dir():
        pytest.skip(f"real sample data not found at {IARC_ATLAS}")
    return IARC_ATLAS


def tiny_processor(pre_images, post_images, return_tensors):
    """Stands in for the fusion model's processor: 8x8 pixels scaled to [0, 1]."""

    def pixel_values(images):
        arrays = [np.asarray(image.resize((8, 8)), dtype=np.float32) / 255 for image in images]
        return torch.stack([torch.from_numpy(array).permute(2, 0, 1) for array in arrays])

    assert return_tensors == "pt"
    return {"pre_pixel_values": pixel_values(pre_images), "post_pixel_values": pixel_values(post_images)}


# --- read_pairs_csv ----------------------------------------------------------------------------------------------


def test_read_pairs_csv(tmp_path):
    for name in ["a_pre.jpg", "a_post.jpg", "b_pre.jpg", "b_post.jpg", "images/c_pre.jpg", "images/c_post.jpg"]:
        _write_image(tmp_path / name)
    csv_path = _write_csv(
        tmp_path / "pairs.csv",
        [
            "pre,post,label,case_id,notes",
            "a_pre.jpg,a_post.jpg,0,patient-1,first visit",
            "",
            "b_pre.jpg, b_post.jpg ,Positive,patient-2,",
            "images/c_pre.jpg,images/c_post.jpg,negative,,",
        ],
    )
    records = read_pairs_csv(csv_path)

    assert records.labels == [0, 1, 0]
    # A row without a case id is its own case, named by its pre path.
    assert records.case_ids == ["patient-1", "patient-2", "images/c_pre.jpg"]
    assert records.records[1] == PairRecord(str(tmp_path / "b_pre.jpg"), str(tmp_path / "b_post.jpg"), 1, "patient-2")
    assert records.label_names == ["Negative", "Positive"] and records.skipped == {}


def test_read_pairs_csv_with_an_image_root(tmp_path):
    for name in ["pre.jpg", "post.jpg"]:
        _write_image(tmp_path / "images" / name)
    csv_path = _write_csv(tmp_path / "pairs.csv", ["\ufeffpre,post,label", "pre.jpg,post.jpg,POSITIVE"])
    records = read_pairs_csv(csv_path, image_root=tmp_path / "images")
    assert records.records == [
        PairRecord(str(tmp_path / "images/pre.jpg"), str(tmp_path / "images/post.jpg"), 1, "pre.jpg")
    ]


@pytest.mark.parametrize(
    "lines, where, message",
    [
        (["pre,post,label", "a_pre.jpg,a_post.jpg,0", "a_pre.jpg,a_post.jpg,maybe"], "line 3", "'maybe'"),
        (["pre,post,label", "a_pre.jpg,a_post.jpg,"], "line 2", "label ''"),
        (["pre,post,diagnosis", "a_pre.jpg,a_post.jpg,0"], "line 1", "missing column(s) label"),
        (["pre,post,label", "a_pre.jpg,a_post.jpg"], "line 2", "expected 3 fields"),
        (["pre,post,label"], "lists no pairs", ""),
    ],
    ids=["bad-label", "empty-label", "missing-column", "missing-field", "no-rows"],
)
def test_read_pairs_csv_errors_name_the_file_and_line(tmp_path, lines, where, message):
    for name in ["a_pre.jpg", "a_post.jpg"]:
        _write_image(tmp_path / name)
    csv_path = _write_csv(tmp_path / "pairs.csv", lines)
    with pytest.raises(ValueError) as error:
        read_pairs_csv(csv_path)
    assert str(csv_path) in str(error.value) and where in str(error.value) and message in str(error.value)


def test_read_pairs_csv_names_a_missing_image(tmp_path):
    _write_image(tmp_path / "a_pre.jpg")
    csv_path = _write_csv(tmp_path / "pairs.csv", ["pre,post,label", "a_pre.jpg,a_post.jpg,1"])
    with pytest.raises(ValueError) as error:
        read_pairs_csv(csv_path)
    message = str(error.value)
    assert f"{csv_path}, line 2" in message and str(tmp_path / "a_post.jpg") in message and "post image" in message


# --- read_iarc_atlas on the real sample -------------------------------------------------------------------------


def test_iarc_atlas_acetic_pairs(iarc_atlas):
    records = read_iarc_atlas(iarc_atlas, post="acetic")

    # 52 cases: 15 low grade, 37 high grade. 13 lack a plain normal-saline view (some have only a green-filter
    # one), one (AABQ) has only magnified and green-filter acetic acid views.
    assert class_counts(records.labels, records.label_names) == {"Negative": 13, "Positive": 25}
    assert records.skipped == {"no normal saline view": 13, "no acetic acid view": 1}
    assert len(records) + len(records.skipped_cases) == 52
    assert ("AABQ", "no acetic acid view") in records.skipped_cases
    for record in records.records:
        assert Path(record.pre_path).is_file() and Path(record.post_path).is_file()
        assert Path(record.pre_path).name.endswith("_After_normal_saline.jpg")
        assert Path(record.post_path).name.endswith("_After_acetic_acid.jpg")
        assert Path(record.pre_path).parent == Path(record.post_path).parent
        # The histopathology agrees with the folder in every case of the sample.
        expected_folder = "images_high_grade" if record.label == 1 else "images_low_grade"
        assert Path(record.pre_path).parts[-3] == expected_folder
    # Case AABH has acetic acid views 2, 3 and 4: the lowest-numbered is used.
    aabh = next(record for record in records.records if record.case_id == "AABH")
    assert Path(aabh.post_path).name == "2_After_acetic_acid.jpg"


def test_iarc_atlas_lugol_pairs_despite_the_odd_character(iarc_atlas):
    records = read_iarc_atlas(iarc_atlas, post="lugol")

    assert class_counts(records.labels, records.label_names) == {"Negative": 13, "Positive": 17}
    assert records.skipped == {"no normal saline view": 13, "no Lugol's iodine view": 9}
    for record in records.records:
        assert Path(record.post_path).is_file() and "Lugol" in Path(record.post_path).name
    assert any(not record.post_path.isascii() for record in records.records)


def test_iarc_atlas_case_level_split(iarc_atlas):
    records = read_iarc_atlas(iarc_atlas)
    splits = case_level_split(records)

    case_sets = {name: {records.case_ids[i] for i in indices} for name, indices in splits.items()}
    assert not (
        case_sets["train"] & case_sets["validation"]
        or case_sets["train"] & case_sets["test"]
        or case_sets["validation"] & case_sets["test"]
    )
    assert sorted(i for indices in splits.values() for i in indices) == list(range(len(records)))
    for name, indices in splits.items():
        assert {records.labels[i] for i in indices} == {0, 1}, f"{name} lacks a class"


# --- read_iarc_atlas rules, on a small fake atlas ---------------------------------------------------------------


def _write_fake_atlas(root: Path, histopathology: dict[str, str]) -> None:
    views = {
        "images_low_grade/case_LOW1": [
            "1_After_normal_saline.jpg",
            "10_After_acetic_acid.jpg",
            "9_After_acetic_acid.jpg",
            f"11_{LUGOL_NAME}",
        ],
        "images_high_grade/case_HIGH1": [
            "2_After_normal_saline.jpg",
            "3_After_acetic_acid.jpg",
            "4_After_acetic_acid_with_green_filter.jpg",
        ],
        "images_high_grade/case_HIGH2": ["1_After_normal_saline_with_green_filter.jpg", "2_After_acetic_acid.jpg"],
        "images_high_grade/case_HIGH3": ["1_After_normal_saline.jpg", "2_After_acetic_acid.jpg"],
    }
    for folder, names in views.items():
        for name in names:
            _write_image(root / folder / name)
    rows = [f"{number},{case_id},{diagnosis}" for number, (case_id, diagnosis) in enumerate(histopathology.items())]
    (root / "colposcopy_cases_low_grade.csv").write_text(IARC_CSV_HEADER + "\n".join(rows) + "\n", encoding="utf-8")


def test_iarc_rules_on_a_fake_atlas(tmp_path, caplog):
    # HIGH1's histopathology says low grade, against its folder; HIGH3 has none: it takes its folder's grade.
    _write_fake_atlas(tmp_path, {"LOW1": "LSIL-CIN1.", "HIGH1": "LSIL-CIN1.", "HIGH2": "HSIL-CIN3."})
    with caplog.at_level(logging.WARNING):
        records = read_iarc_atlas(tmp_path)

    assert [(record.case_id, record.label) for record in records.records] == [("LOW1", 0), ("HIGH3", 1)]
    assert records.skipped_cases == [
        ("HIGH1", "histopathology disagrees with folder"),
        ("HIGH2", "no normal saline view"),
    ]
    assert "HIGH3" in caplog.text
    # Views are numbered as numbers: 9 comes before 10.
    assert Path(records.records[0].post_path).name == "9_After_acetic_acid.jpg"

    lugol = read_iarc_atlas(tmp_path, post="lugol")
    assert Path(lugol.records[0].post_path).name == f"11_{LUGOL_NAME}"
    # Views are checked before labels: HIGH1 is now skipped for its missing view, like HIGH3.
    assert lugol.skipped == {"no Lugol's iodine view": 2, "no normal saline view": 1}


def test_iarc_histopathology_of_cancer_is_positive(tmp_path):
    diagnosis = '"Cervical histopathology was invasive squamous cell cancer, vaginal histopathology was HSIL-VAIN 3."'
    _write_fake_atlas(tmp_path, {"HIGH3": diagnosis, "LOW1": "LSIL-CIN1.", "HIGH1": "HSIL-CIN2."})
    records = read_iarc_atlas(tmp_path)
    assert dict(zip(records.case_ids, records.labels)) == {"LOW1": 0, "HIGH1": 1, "HIGH3": 1}


def test_iarc_without_cases_names_the_root(tmp_path):
    with pytest.raises(ValueError, match=str(tmp_path)):
        read_iarc_atlas(tmp_path)
    with pytest.raises(ValueError, match="post must be one of"):
        read_iarc_atlas(tmp_path, post="iodine")


# --- case_level_split ---------------------------------------------------------------------------------------------


def test_case_level_split_keeps_cases_whole():
    # 10 cases of 2 pairs each, 5 Negative and 5 Positive.
    records = PairRecords(
        [
            PairRecord(f"{case}_{k}_pre.jpg", f"{case}_{k}_post.jpg", int(case >= 5), f"case-{case}")
            for case in range(10)
            for k in range(2)
        ]
    )
    splits = case_level_split(records, seed=3)

    owner = {}
    for name, indices in splits.items():
        for index in indices:
            assert owner.setdefault(records.case_ids[index], name) == name, "a case is in two splits"
        assert {records.labels[i] for i in indices} == {0, 1}, f"{name} lacks a class"
    assert sum(len(indices) for indices in splits.values()) == 20
    assert records.select(splits["test"]).case_ids == [records.case_ids[i] for i in splits["test"]]


# --- PairDataset ------------------------------------------------------------------------------------------------


def test_pair_dataset_items(tmp_path):
    _write_image(tmp_path / "pre.jpg", color=(255, 0, 0))
    _write_image(tmp_path / "post.jpg", color=(0, 0, 255), size=(20, 10))
    records = PairRecords([PairRecord(str(tmp_path / "pre.jpg"), str(tmp_path / "post.jpg"), 1, "case-1")])
    item = PairDataset(records, tiny_processor, pair_transform=paired_train_transform("flip"))[0]

    assert item["pre_pixel_values"].shape == item["post_pixel_values"].shape == (3, 8, 8)
    assert item["pre_pixel_values"][0].mean() > 0.9 and item["post_pixel_values"][2].mean() > 0.9  # not swapped
    assert item["labels"].dtype == torch.float32 and item["labels"].item() == 1.0


def test_pair_dataset_names_a_missing_post_image(tmp_path):
    _write_image(tmp_path / "a.jpg")
    missing = tmp_path / "b.jpg"
    records = PairRecords([PairRecord(str(tmp_path / "a.jpg"), str(missing), 0, "case-7")])
    with pytest.raises(ImageLoadError) as error:
        PairDataset(records, tiny_processor)[0]
    assert error.value.source_name == str(missing)
    assert str(missing) in str(error.value) and "post image" in str(error.value) and "case-7" in str(error.value)


# --- paired_train_transform -------------------------------------------------------------------------------------


def _marked_image(mark_color=(220, 30, 30)) -> Image.Image:
    """A dark 96x64 image with an asymmetric L-shaped mark near the top-left corner."""
    image = Image.new("RGB", (96, 64), (20, 20, 20))
    draw = ImageDraw.Draw(image)
    draw.rectangle([12, 8, 23, 47], fill=mark_color)
    draw.rectangle([12, 8, 55, 19], fill=mark_color)
    return image


def _mark(image: Image.Image) -> np.ndarray:
    brightness = np.asarray(image, dtype=np.int32).sum(axis=2)
    return brightness > brightness.max() / 2


def test_paired_transform_applies_the_same_parameters_to_both_images():
    transform = paired_train_transform("default")
    image = _marked_image()
    outputs = set()
    for seed in range(25):
        torch.manual_seed(seed)
        pre, post = transform(image, image.copy())
        assert np.array_equal(np.asarray(pre), np.asarray(post)), f"seed {seed}: the pair came apart"
        outputs.add(np.asarray(pre).tobytes())
    assert len(outputs) > 20  # the transform is random, not the identity


def test_paired_transform_keeps_differently_coloured_and_sized_images_aligned():
    # Post has a white mark (like acetowhitening) and twice the size: it is resized to pre's size first.
    transform = paired_train_transform("default")
    pre_image = _marked_image()
    post_image = _marked_image(mark_color=(250, 250, 250)).resize((192, 128), Image.Resampling.NEAREST)
    for seed in range(25):
        torch.manual_seed(seed)
        pre, post = transform(pre_image, post_image)
        assert pre.size == post.size == pre_image.size
        pre_mark, post_mark = _mark(pre), _mark(post)
        overlap = (pre_mark & post_mark).sum() / (pre_mark | post_mark).sum()
        assert overlap > 0.95, f"seed {seed}: the marks overlap by {overlap:.2f} only"


def test_paired_transform_presets():
    assert paired_train_transform("none") is None
    with pytest.raises(ValueError, match="choose one of none, flip, default"):
        paired_train_transform("strong")
