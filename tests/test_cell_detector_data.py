import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

from cervix_hf.data import (
    SIPAKMED_LABELS,
    DetectionDataset,
    DetectionRecord,
    DetectionRecords,
    DetectionTransform,
    RandomRightAngleRotation,
    detection_collate,
    read_coco,
    read_detection_csv,
    read_isbi2014_edf,
    read_sipakmed,
    read_voc,
)
from train.presets import detection_train_transform

EDF_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "isbi2014-edf"

# Boxes of the CSV, COCO and VOC fixtures: image name -> [(box xyxy, class name)].
BOXES = {
    "a.png": [((10.0, 5.0, 30.0, 20.0), "koilocyte"), ((2.5, 30.0, 12.0, 44.5), "normal")],
    "b.png": [],
    "c.png": [((0.0, 0.0, 64.0, 48.0), "normal")],
}
LABEL_NAMES = ["koilocyte", "normal"]


def _write_image(path: Path, size=(64, 48)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (200, 150, 180)).save(path)


def _write_points(path: Path, points, separator=","):
    path.write_text("".join(f"{x}{separator}{y}\n" for x, y in points))


def _records_as_dict(records):
    return {
        Path(record.image_path).name: [
            (box, records.label_names[label]) for box, label in zip(record.boxes, record.labels)
        ]
        for record in records.records
    }


# SIPaKMeD


def _write_sipakmed(root: Path, nested: bool) -> dict[str, Path]:
    """Two classes of the SIPaKMeD cluster layout, with a CROPPED folder; returns the class folders."""
    folders = {}
    for name in ["Dyskeratotic", "Parabasal"]:
        folder = root / f"im_{name}" / f"im_{name}" if nested else root / f"im_{name}"
        folders[name] = folder
        _write_image(folder / "001.bmp", size=(80, 60))
    dyskeratotic, parabasal = folders["Dyskeratotic"], folders["Parabasal"]
    # Cell 1: comma-separated floats; cell 2: space-separated, leaving the image (clipped).
    _write_points(dyskeratotic / "001_cyt01.dat", [(10.5, 12), (30, 8.25), (25, 40), (12, 35)])
    _write_points(dyskeratotic / "001_nuc01.dat", [(18, 20), (22, 19), (21, 25)])
    _write_points(dyskeratotic / "001_cyt02.dat", [(50, 30), (95, 31), (70, 58)], separator="   ")
    _write_points(dyskeratotic / "001_nuc02.dat", [(60, 40), (66, 44)], separator=" ")
    _write_image(dyskeratotic / "002.bmp", size=(80, 60))  # a cluster image with no cells
    # Cell 1 has a malformed third line; cell 2 is fine.
    (parabasal / "001_cyt01.dat").write_text("5,5\n20,6\n12;oops\n9,30\n")
    _write_points(parabasal / "001_nuc01.dat", [(8, 10), (12, 14)])
    _write_points(parabasal / "001_cyt02.dat", [(40, 10), (60, 25)])
    _write_points(parabasal / "001_nuc02.dat", [(45, 15), (50, 20)])
    # Single-cell crops are not detection data.
    _write_image(dyskeratotic / "CROPPED" / "001_01.bmp", size=(30, 30))
    _write_points(dyskeratotic / "CROPPED" / "001_01_cyt.dat", [(1, 1), (20, 20)])
    return folders


@pytest.mark.parametrize("nested", [False, True], ids=["im_Class", "im_Class/im_Class"])
def test_read_sipakmed_cluster_layout(tmp_path, nested, caplog):
    folders = _write_sipakmed(tmp_path, nested)
    with caplog.at_level(logging.WARNING):
        records = read_sipakmed(tmp_path)
    assert records.label_names == SIPAKMED_LABELS
    assert [record.image_path for record in records.records] == [
        str(folders["Dyskeratotic"] / "001.bmp"),
        str(folders["Dyskeratotic"] / "002.bmp"),
        str(folders["Parabasal"] / "001.bmp"),
    ]
    assert [record.image_id for record in records.records] == [0, 1, 2]
    first, empty, parabasal = records.records
    assert first.boxes == [(10.5, 8.25, 30.0, 40.0), (50.0, 30.0, 80.0, 58.0)]
    assert first.labels == [0, 0]
    assert empty.boxes == [] and empty.labels == []
    assert parabasal.boxes == [(40.0, 10.0, 60.0, 25.0)]  # the malformed cell 1 is skipped
    assert parabasal.labels == [SIPAKMED_LABELS.index("Parabasal")]
    assert records.box_counts() == {name: {"Dyskeratotic": 2, "Parabasal": 1}.get(name, 0) for name in SIPAKMED_LABELS}

    malformed = [warning for warning in records.warnings if "001_cyt01.dat" in warning]
    assert len(malformed) == 1
    assert str(folders["Parabasal"] / "001_cyt01.dat") in malformed[0] and "line 3" in malformed[0]
    assert sum("im_Koilocytotic" in warning for warning in records.warnings) == 1  # absent class folders
    assert "problem(s) skipped" in caplog.text


def test_read_sipakmed_nucleus_boxes_and_short_boundaries(tmp_path):
    folders = _write_sipakmed(tmp_path, nested=False)
    _write_points(folders["Parabasal"] / "001_nuc02.dat", [(45, 15)])
    records = read_sipakmed(tmp_path, box_from="nucleus")
    assert records.records[0].boxes == [(18.0, 19.0, 22.0, 25.0), (60.0, 40.0, 66.0, 44.0)]
    assert records.records[2].boxes == [(8.0, 10.0, 12.0, 14.0)]  # cell 2 has a single nucleus point
    assert any("001_nuc02.dat" in warning and "1 boundary point" in warning for warning in records.warnings)
    with pytest.raises(ValueError, match="box_from"):
        read_sipakmed(tmp_path, box_from="cell")


def test_read_sipakmed_without_class_folders_names_root_and_layout(tmp_path):
    _write_image(tmp_path / "CROPPED" / "001_01.bmp")
    with pytest.raises(ValueError, match=r"im_<Class>/NNN\.bmp") as error:
        read_sipakmed(tmp_path)
    assert str(tmp_path) in str(error.value)


# CSV, COCO and VOC


def _write_csv(path: Path, rows):
    lines = ["filename,xmin,ymin,xmax,ymax,label"] + [",".join(str(value) for value in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")


def _csv_rows():
    rows = []
    for filename, objects in BOXES.items():
        rows += [(filename, *box, name) for box, name in objects] or [(filename, "", "", "", "", "")]
    return rows


def test_csv_round_trip(tmp_path):
    _write_csv(tmp_path / "boxes.csv", _csv_rows())
    records = read_detection_csv(tmp_path / "boxes.csv")
    assert records.label_names == LABEL_NAMES
    assert _records_as_dict(records) == BOXES
    assert records.records[0].image_path == str(tmp_path / "a.png")
    assert records.box_counts() == {"koilocyte": 1, "normal": 2}

    records = read_detection_csv(
        tmp_path / "boxes.csv", image_root=tmp_path / "images", label_names=["normal", "koilocyte", "unseen"]
    )
    assert records.records[0].labels == [1, 0]
    assert records.records[0].image_path == str(tmp_path / "images" / "a.png")


@pytest.mark.parametrize(
    "bad_row, label_names, message",
    [
        (("a.png", 10, 5, "thirty", 20, "normal"), None, "four numbers"),
        (("a.png", 30, 5, 10, 20, "normal"), None, "xmax > xmin"),
        (("a.png", 10, 20, 30, 20, "normal"), None, "ymax > ymin"),
        (("a.png", 10, 5, 30, 20, "HSIL"), LABEL_NAMES, "'HSIL' is not in label_names"),
        (("a.png", 10, 5, 30, 20), None, "expected 6 fields"),
        (("", 10, 5, 30, 20, "normal"), None, "filename is empty"),
    ],
    ids=["not a number", "xmax<=xmin", "ymax<=ymin", "unknown label", "missing field", "no filename"],
)
def test_a_bad_csv_line_names_the_file_and_line(tmp_path, bad_row, label_names, message):
    rows = _csv_rows()
    rows.insert(1, bad_row)  # line 3: the header is line 1
    _write_csv(tmp_path / "boxes.csv", rows)
    with pytest.raises(ValueError, match=message) as error:
        read_detection_csv(tmp_path / "boxes.csv", label_names=label_names)
    assert f"{tmp_path / 'boxes.csv'}, line 3" in str(error.value)


def _coco(annotations_extra=()):
    # Category ids neither contiguous nor in label order: indices follow the ids.
    categories = [{"id": 7, "name": "normal"}, {"id": 3, "name": "koilocyte"}]
    category_ids = {"koilocyte": 3, "normal": 7}
    images, annotations = [], []
    for image_id, (filename, objects) in enumerate(BOXES.items(), start=100):
        images.append({"id": image_id, "file_name": f"images/{filename}", "width": 64, "height": 48})
        for x0, y0, x1, y1 in (box for box, _ in objects):
            annotations.append({"bbox": [x0, y0, x1 - x0, y1 - y0], "image_id": image_id, "iscrowd": 0})
        for annotation, (_, name) in zip(annotations[len(annotations) - len(objects) :], objects):
            annotation["category_id"] = category_ids[name]
    annotations.append({"bbox": [1, 1, 5, 5], "image_id": 101, "category_id": 3, "iscrowd": 1})
    annotations += list(annotations_extra)
    for annotation_id, annotation in enumerate(annotations, start=1):
        annotation.setdefault("id", annotation_id)
    return {"images": images, "annotations": annotations, "categories": categories}


def test_coco_round_trip(tmp_path):
    (tmp_path / "train.json").write_text(json.dumps(_coco()))
    records = read_coco(tmp_path / "train.json")
    assert records.label_names == LABEL_NAMES
    assert _records_as_dict(records) == BOXES  # the iscrowd box of b.png is skipped
    assert [record.image_id for record in records.records] == [100, 101, 102]
    assert records.records[0].image_path == str(tmp_path / "images" / "a.png")


@pytest.mark.parametrize(
    "bad_annotation, message",
    [
        ({"id": 42, "bbox": [1, 1, 0, 5], "image_id": 100, "category_id": 3}, "width and height must be positive"),
        ({"id": 42, "bbox": [1, 1, 5], "image_id": 100, "category_id": 3}, "bbox must be"),
        ({"id": 42, "bbox": [1, 1, 5, 5], "image_id": 9, "category_id": 3}, "unknown image_id"),
        ({"id": 42, "bbox": [1, 1, 5, 5], "image_id": 100, "category_id": 1}, "unknown category_id"),
    ],
    ids=["empty box", "short bbox", "unknown image", "unknown category"],
)
def test_a_bad_coco_annotation_names_the_file_and_id(tmp_path, bad_annotation, message):
    (tmp_path / "train.json").write_text(json.dumps(_coco([bad_annotation])))
    with pytest.raises(ValueError, match=message) as error:
        read_coco(tmp_path / "train.json")
    assert f"{tmp_path / 'train.json'}, annotation 42" in str(error.value)


def _voc_xml(filename, objects):
    # VOC coordinates are 1-based and xmax/ymax are the last pixel inside the box.
    elements = "".join(
        f"<object><name>{name}</name><difficult>0</difficult><bndbox><xmin>{x0 + 1}</xmin><ymin>{y0 + 1}</ymin>"
        f"<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
        for (x0, y0, x1, y1), name in objects
    )
    return f"<annotation><filename>{filename}</filename>{elements}</annotation>"


def test_voc_round_trip(tmp_path):
    for filename, objects in BOXES.items():
        (tmp_path / f"{Path(filename).stem}.xml").write_text(_voc_xml(filename, objects))
    records = read_voc(tmp_path, image_root=tmp_path / "JPEGImages")
    assert records.label_names == LABEL_NAMES
    assert _records_as_dict(records) == BOXES
    assert records.records[0].image_path == str(tmp_path / "JPEGImages" / "a.png")

    records = read_voc([tmp_path / "c.xml", tmp_path / "a.xml"], label_names=["normal", "koilocyte"])
    assert [record.labels for record in records.records] == [[0], [1, 0]]
    assert records.records[0].image_path == str(tmp_path / "c.png")
    with pytest.raises(ValueError, match="'koilocyte' is not in label_names") as error:
        read_voc(tmp_path, label_names=["normal"])
    assert str(tmp_path / "a.xml") in str(error.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="No .xml file"):
        read_voc(tmp_path / "empty")


def test_malformed_voc_xml_names_the_file_and_line(tmp_path):
    (tmp_path / "a.xml").write_text(_voc_xml("a.png", BOXES["a.png"]))
    (tmp_path / "b.xml").write_text("<annotation>\n<filename>b.png</filename>\n<object><name>normal</object>\n")
    with pytest.raises(ValueError, match="malformed XML") as error:
        read_voc(tmp_path)
    assert f"{tmp_path / 'b.xml'}, line 3" in str(error.value)


# The real ISBI 2014 EDF set


@pytest.mark.skipif(not EDF_DIR.is_dir(), reason=f"real ISBI 2014 EDF sample not found at {EDF_DIR}")
def test_read_isbi2014_edf_real_set():
    records = read_isbi2014_edf(EDF_DIR)
    assert len(records) == 12 and records.label_names == ["nucleus"]
    # Measured: 26 to 53 nuclei per image, 448 in all.
    assert [len(record.boxes) for record in records.records] == [37, 33, 37, 30, 31, 49, 26, 31, 53, 48, 36, 37]
    boxes = np.array([box for record in records.records for box in record.boxes])
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= 1024).all()
    sizes = boxes[:, 2:] - boxes[:, :2]
    assert sizes.min() >= 5 and sizes.max() <= 60  # nuclei, not cells (median about 23 px)
    assert 18 <= np.median(sizes) <= 28

    # Each box is tight around its outline: ground-truth pixels touch all four sides.
    record = records.records[0]
    truth = np.asarray(Image.open(EDF_DIR / "EDF000_GT.png"))
    for x0, y0, x1, y1 in np.array(record.boxes, dtype=int):
        inside = truth[y0:y1, x0:x1] > 0
        assert inside[0].any() and inside[-1].any() and inside[:, 0].any() and inside[:, -1].any()

    subset = read_isbi2014_edf(EDF_DIR, names=["EDF010", "EDF000"])
    assert [Path(record.image_path).name for record in subset.records] == ["EDF010.png", "EDF000.png"]
    with pytest.raises(ValueError, match="EDF999"):
        read_isbi2014_edf(EDF_DIR, names=["EDF999"])


# Augmentation


def _rectangle_image(box, size=(64, 48)):
    """A white filled rectangle on black covering exactly the integer `box`."""
    pixels = np.zeros((size[1], size[0], 3), dtype=np.uint8)
    x0, y0, x1, y1 = box
    pixels[y0:y1, x0:x1] = 255
    return Image.fromarray(pixels)


def _white(image):
    return np.asarray(image.convert("L")) > 127


@pytest.mark.parametrize(
    "transforms",
    [[v2.RandomHorizontalFlip(p=1)], [v2.RandomVerticalFlip(p=1)], [RandomRightAngleRotation()]],
    ids=["hflip", "vflip", "rot90"],
)
def test_flips_and_rotations_move_the_box_with_the_pixels(transforms):
    box = (10, 5, 30, 20)
    transform = DetectionTransform(transforms)
    seen = set()
    for seed in range(12):
        torch.manual_seed(seed)
        image, boxes, labels = transform(_rectangle_image(box), [box], [3])
        assert labels == [3] and boxes.dtype == np.float32 and boxes.shape == (1, 4)
        rows, columns = np.nonzero(_white(image))
        assert boxes[0].tolist() == [columns.min(), rows.min(), columns.max() + 1, rows.max() + 1]
        seen.add((image.size, tuple(boxes[0].tolist())))
    assert len(seen) == (4 if isinstance(transforms[0], RandomRightAngleRotation) else 1)


def test_default_preset_box_still_encloses_the_rectangle():
    box = (24, 18, 40, 30)  # central, so a zoom in or out keeps it inside the image
    transform = detection_train_transform("default")
    for seed in range(20):
        torch.manual_seed(seed)
        image, boxes, labels = transform(_rectangle_image(box), [box], [1])
        assert labels == [1]
        white = _white(image)
        x0, y0, x1, y1 = np.round(boxes[0]).astype(int)
        # Nearest-neighbour resampling may move an edge by a pixel: all white 1 px inside, all black 2 px outside.
        assert white[y0 + 1 : y1 - 1, x0 + 1 : x1 - 1].all()
        ring = np.zeros_like(white)
        ring[y0 - 2 : y1 + 2, x0 - 2 : x1 + 2] = True
        ring[y0 - 1 : y1 + 1, x0 - 1 : x1 + 1] = False
        assert not white[ring].any()


@pytest.mark.parametrize("preset", ["flip", "default"])
def test_images_without_boxes_pass_every_transform(preset):
    for seed in range(8):
        torch.manual_seed(seed)
        image, boxes, labels = detection_train_transform(preset)(_rectangle_image((5, 5, 9, 9)), [], [])
        assert isinstance(image, Image.Image)
        assert boxes.shape == (0, 4) and labels == []


@pytest.mark.parametrize(
    "scale, kept_boxes, kept_labels",
    [
        (2.0, [[24.0, 16.0, 40.0, 32.0]], [1]),  # zoom in: the corner and the thin box leave the image
        (0.5, [[16.0, 12.0, 18.0, 14.0], [30.0, 22.0, 34.0, 26.0]], [2, 1]),  # zoom out: the thin box is 0.75 px
    ],
    ids=["zoom in", "zoom out"],
)
def test_boxes_degenerate_after_scaling_are_dropped(scale, kept_boxes, kept_labels):
    boxes = [(0.0, 0.0, 4.0, 4.0), (28.0, 20.0, 36.0, 28.0), (50.0, 10.0, 51.5, 20.0)]
    transform = DetectionTransform([v2.RandomAffine(degrees=0, scale=(scale, scale))])  # about the centre (32, 24)
    image, kept, labels = transform(Image.new("RGB", (64, 48)), boxes, [2, 1, 3])
    assert image.size == (64, 48)
    np.testing.assert_allclose(kept, kept_boxes)
    assert labels == kept_labels


def test_presets():
    assert detection_train_transform("none") is None
    with pytest.raises(ValueError, match="none, flip, default"):
        detection_train_transform("strong")
    with pytest.raises(ValueError, match="one entry per object"):
        detection_train_transform("flip")(Image.new("RGB", (8, 8)), [(1, 1, 4, 4)], [])


# Dataset


def test_dataset_returns_raw_augmented_samples(tmp_path):
    _write_image(tmp_path / "a.png", size=(64, 48))
    _write_image(tmp_path / "b.png", size=(32, 16))
    records = DetectionRecords(
        [
            DetectionRecord(str(tmp_path / "a.png"), [(10.0, 5.0, 30.0, 20.0)], [1], image_id=7),
            DetectionRecord(str(tmp_path / "b.png"), [], [], image_id=8),
        ],
        label_names=LABEL_NAMES,
    )
    dataset = DetectionDataset(records, transform=DetectionTransform([v2.RandomHorizontalFlip(p=1)]))
    assert len(dataset) == 2 and dataset.label_names == LABEL_NAMES
    sample = dataset[0]
    assert sample["image"].mode == "RGB" and sample["image"].size == (64, 48)
    assert sample["boxes"].dtype == torch.float32 and sample["boxes"].tolist() == [[34.0, 5.0, 54.0, 20.0]]
    assert sample["class_labels"].dtype == torch.int64 and sample["class_labels"].tolist() == [1]
    assert sample["image_id"] == 7 and sample["path"] == str(tmp_path / "a.png")

    empty = DetectionDataset(records)[1]
    assert empty["boxes"].shape == (0, 4) and empty["class_labels"].shape == (0,)
    assert detection_collate([sample, empty]) == [sample, empty]

    subset = records.select([1])
    assert len(subset) == 1 and subset.records[0].image_id == 8 and subset.label_names == LABEL_NAMES
    with pytest.raises(ValueError, match="one entry per object"):
        DetectionRecord("x.png", [(0.0, 0.0, 1.0, 1.0)], [], image_id=0)
