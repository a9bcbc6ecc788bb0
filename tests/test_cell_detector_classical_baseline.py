"""The classical nucleus baseline: boxes where dark blobs are drawn, scores by darkness x fill, one box per blob,
and its figure on the real ISBI 2014 test images, scored by the project's COCO metrics."""

import cv2
import numpy as np
import pytest

from cervix_hf.data import read_isbi2014_edf
from cervix_hf.evaluation.metrics import compute_detection_metrics
from train.classical_detection import ClassicalNucleusDetector

from .conftest import SHARED_DATA, require_data

BACKGROUND = 210


def _slide(shapes, size=(200, 300)) -> np.ndarray:
    """A light grey RGB slide with each shape drawn at its grey level: ("disc", (x, y), radius, level) or
    ("rect", (x0, y0, x1, y1), level)."""
    image = np.full((*size, 3), BACKGROUND, np.uint8)
    for shape in shapes:
        if shape[0] == "disc":
            _, center, radius, level = shape
            cv2.circle(image, center, radius, (level,) * 3, thickness=-1)
        else:
            _, (x0, y0, x1, y1), level = shape
            cv2.rectangle(image, (x0, y0), (x1 - 1, y1 - 1), (level,) * 3, thickness=-1)
    return image


def _iou(a, b) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_dark_discs_are_found_where_drawn_once_each_darkest_first():
    discs = [((60, 60), 11, 40), ((150, 100), 11, 120), ((240, 140), 11, 80)]
    found = ClassicalNucleusDetector()(_slide([("disc", c, r, level) for c, r, level in discs]))

    # One box per disc (the four darkness thresholds each cut it, NMS keeps one), centred on it. The box may be
    # the blurred disc's core, cut at a higher threshold: IoU with the drawn disc at least 0.6.
    assert len(found["boxes"]) == 3 and found["labels"].tolist() == [0, 0, 0]
    by_darkness = sorted(discs, key=lambda disc: disc[2])
    for box, (center, radius, _) in zip(found["boxes"], by_darkness):
        drawn = (center[0] - radius, center[1] - radius, center[0] + radius + 1, center[1] + radius + 1)
        assert _iou(box, drawn) > 0.6
        assert np.allclose([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2], np.add(center, 0.5), atol=1.5)
    assert np.all(np.diff(found["scores"]) < 0)  # darkest (level 40) first, faintest (120) last


def test_a_filled_blob_outscores_a_hollow_one_of_the_same_darkness():
    ring = np.full((120, 200, 3), BACKGROUND, np.uint8)
    cv2.circle(ring, (50, 60), 14, (60, 60, 60), thickness=-1)  # filled disc
    cv2.circle(ring, (150, 60), 14, (60, 60, 60), thickness=5)  # ring: same darkness, a third of the fill
    found = ClassicalNucleusDetector()(ring)
    centres_x = (found["boxes"][:, 0] + found["boxes"][:, 2]) / 2
    assert len(found["boxes"]) == 2
    assert abs(centres_x[0] - 50) < 3 and abs(centres_x[1] - 150) < 3  # the disc ranks first


def test_regions_of_implausible_size_or_shape_are_not_nuclei():
    image = _slide(
        [
            ("disc", (40, 100), 2, 40),  # a speck: 13 px, under min_area
            ("disc", (130, 100), 20, 40),  # a clump of about 1,250 px, over max_area=1000
            ("rect", (200, 90, 290, 100), 40),  # a fibre: width/height 9, over max_aspect_ratio
            ("disc", (250, 40), 10, 40),  # a nucleus
        ]
    )
    found = ClassicalNucleusDetector(max_area=1000)(image)
    assert len(found["boxes"]) == 1
    assert _iou(found["boxes"][0], (240, 30, 261, 51)) > 0.8


def test_nms_threshold_and_detection_cap():
    # Six separate discs: six boxes, whatever the cap above them; the cap keeps the best.
    image = _slide([("disc", (60 + 40 * i, 60), 10, 50) for i in range(6)])
    assert len(ClassicalNucleusDetector()(image)["boxes"]) == 6
    assert len(ClassicalNucleusDetector(max_detections=4)(image)["boxes"]) == 4


def test_nothing_dark_nothing_found():
    found = ClassicalNucleusDetector()(np.full((64, 64, 3), BACKGROUND, np.uint8))
    assert found["boxes"].shape == (0, 4) and found["scores"].shape == (0,) and found["labels"].shape == (0,)


@pytest.mark.parametrize(
    "field, value",
    [
        ("background_size", 50),
        ("blur_size", 0),
        ("darkness_thresholds", ()),
        ("darkness_thresholds", (300,)),
        ("max_area", 10),
        ("min_aspect_ratio", 0.0),
        ("nms_iou", 1.5),
    ],
)
def test_bad_settings_name_the_argument(field, value):
    with pytest.raises(ValueError, match=field):
        ClassicalNucleusDetector(**{field: value})


def test_real_isbi_test_images_score_as_published_in_the_benchmark():
    root = require_data(SHARED_DATA / "isbi2014-edf")
    records = read_isbi2014_edf(root, ["EDF010", "EDF011"])
    detector = ClassicalNucleusDetector()
    found = [detector(record.image_path) for record in records.records]
    truths = [{"boxes": record.boxes, "labels": record.labels} for record in records.records]
    metrics = compute_detection_metrics(truths, found, records.label_names)
    # Measured: AP@.5 0.452, recall@300 0.493 (IoU .5:.95) on the 73 nuclei of EDF010-EDF011.
    assert metrics["map_50"] == pytest.approx(0.452, abs=0.01)
    assert metrics["mar"] == pytest.approx(0.493, abs=0.01)
