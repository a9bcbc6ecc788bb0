"""Tiled detection: a slide larger than the detector's input is detected tile by tile, and a nucleus that a tile
border cuts is found once, with its whole box."""

import cv2
import numpy as np
import PIL.Image
import pytest
import torch

from cervix_hf import CellDetectorImageProcessor
from cervix_hf.models.cell_detector.modeling_cell_detector import CellDetectorOutput
from cervix_hf.models.cell_detector.tiling_cell_detector import detect_tiled, tile_origins
from cervix_hf.prediction.inference import detect_cells
from train.classical_detection import ClassicalNucleusDetector

TILE, OVERLAP, RADIUS = 256, 64, 10


@pytest.mark.parametrize(
    "length, origins",
    [(100, [0]), (256, [0]), (257, [0, 1]), (448, [0, 192]), (1000, [0, 186, 372, 558, 744])],
)
def test_tiles_cover_the_image_with_the_overlap_and_end_at_its_edge(length, origins):
    assert tile_origins(length, TILE, OVERLAP) == origins
    steps = np.diff(origins)
    assert (steps <= TILE - OVERLAP).all()  # neighbours share at least the overlap


@pytest.mark.parametrize("tile_size, overlap", [(0, 0), (256, 256), (256, -1)])
def test_bad_tiling_names_the_arguments(tile_size, overlap):
    with pytest.raises(ValueError, match="tile_size"):
        tile_origins(1000, tile_size, overlap)


def _slide_with_nuclei_on_tile_borders(width=1000, height=700):
    """A light slide with dark discs centred on the tile borders (and their crossings) and inside tiles."""
    xs, ys = tile_origins(width, TILE, OVERLAP), tile_origins(height, TILE, OVERLAP)
    # A tile's right edge and its neighbour's left edge are the borders that cut discs.
    border_xs = [x + TILE for x in xs[:-1]] + xs[1:]
    border_ys = [y + TILE for y in ys[:-1]] + ys[1:]
    centres = {(bx, 100) for bx in border_xs} | {(100, by) for by in border_ys}
    centres |= {(border_xs[0], border_ys[0]), (border_xs[1], border_ys[1]), (500, 500)}
    image = np.full((height, width, 3), 210, np.uint8)
    for centre in centres:
        cv2.circle(image, centre, RADIUS, (50, 50, 50), thickness=-1)
    return PIL.Image.fromarray(image), sorted(centres)


def _assert_each_found_once_and_whole(boxes, centres):
    assert len(boxes) == len(centres)
    found_centres = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], axis=1)
    for centre in centres:
        distance = np.linalg.norm(found_centres - (np.asarray(centre) + 0.5), axis=1)
        nearest = int(distance.argmin())
        assert distance[nearest] < 2, f"no box centred on the disc at {centre}"
        sides = boxes[nearest, 2:] - boxes[nearest, :2]
        assert (sides >= 2 * RADIUS - 2).all(), f"the disc at {centre} has a box cut by a tile border: {sides}"


def test_nuclei_across_tile_borders_are_found_once_each_with_their_whole_box():
    image, centres = _slide_with_nuclei_on_tile_borders()
    tiles_seen = []

    def detect(tile):
        tiles_seen.append(tile.size)
        return ClassicalNucleusDetector()(tile)

    found = detect_tiled(detect, image, TILE, OVERLAP)
    assert set(tiles_seen) == {(TILE, TILE)} and len(tiles_seen) == 5 * 4
    _assert_each_found_once_and_whole(found["boxes"], centres)
    assert np.all(np.diff(found["scores"]) <= 0)


def test_boxes_of_different_classes_at_one_place_both_stay():
    image = PIL.Image.new("RGB", (400, TILE), "white")
    tile_lefts = [0, 144]  # one row of two tiles for a width of 400

    def detect(tile):  # one object at x 190-210 of the image, seen as class 0 and as class 1 in both tiles
        left = 200 - tile_lefts.pop(0)
        return {"boxes": [[left - 10, 140, left + 10, 160]] * 2, "scores": [0.9, 0.8], "labels": [0, 1]}

    found = detect_tiled(detect, image, TILE, OVERLAP)
    assert sorted(found["labels"].tolist()) == [0, 1]  # one per class: the two tiles' copies merged, classes not
    assert np.allclose(found["boxes"], [[190, 140, 210, 160]] * 2)


class _DarkDiscModel(torch.nn.Module):
    """Stands in for a trained detector: the classical detector run on `pixel_values`, in the model's output."""

    config = type("Config", (), {"id2label": {0: "nucleus"}})()

    def forward(self, pixel_values, pixel_mask=None):
        images = (pixel_values.permute(0, 2, 3, 1) * 255).round().byte().numpy()
        results = [ClassicalNucleusDetector()(image) for image in images]
        count = max(len(result["scores"]) for result in results)
        boxes, scores = torch.zeros(len(images), count, 4), torch.zeros(len(images), count)
        labels = torch.full((len(images), count), -1)
        for index, result in enumerate(results):
            found = len(result["scores"])
            boxes[index, :found] = torch.from_numpy(result["boxes"])
            scores[index, :found] = torch.from_numpy(result["scores"]) / 255
            labels[index, :found] = 0
        sizes = torch.tensor([list(pixel_values.shape[-2:])] * len(images))
        return CellDetectorOutput(
            pred_boxes=boxes, scores=scores, pred_labels=labels, detection_mask=labels >= 0, image_sizes=sizes
        )


def test_detect_cells_with_tile_size_runs_the_model_on_tiles_and_merges_them():
    image, centres = _slide_with_nuclei_on_tile_borders()
    model, processor = _DarkDiscModel(), CellDetectorImageProcessor()
    tiled = detect_cells(model, processor, image, threshold=0.0, tile_size=TILE, overlap=OVERLAP)
    boxes = np.array([cell.box for cell in tiled])
    _assert_each_found_once_and_whole(boxes, centres)
    assert {cell.label for cell in tiled} == {"nucleus"}
    whole = detect_cells(model, processor, image, threshold=0.0)  # no tile_size: one pass over the image
    assert len(whole) == len(centres)


REMOTE_TILED_PIPELINE = """
import json, sys
sys.modules["cervix_hf"] = None  # the pipeline must come from the saved folder, not from this project
from transformers import pipeline
detector = pipeline("object-detection", model=sys.argv[1], trust_remote_code=True)
found = {size: detector(sys.argv[2], threshold=0.05, **({"tile_size": int(size), "overlap": 64} if size else {}))
         for size in ("", sys.argv[3])}
print(json.dumps(found))
"""


def test_the_saved_detectors_pipeline_tiles_as_detect_cells_does(tmp_path):
    """`pipeline("object-detection", trust_remote_code=True)` in a fresh process, without cervix_hf, takes
    `tile_size`/`overlap` and gives the boxes `detect_cells` gives with the same tiles."""
    import json
    import os
    import subprocess
    import sys

    from cervix_hf import CellDetectorForObjectDetection
    from cervix_hf.registry import cell_detector_config

    torch.manual_seed(0)
    config = cell_detector_config("tiny", id2label={0: "nucleus"}, min_size=256, max_size=256)
    model = CellDetectorForObjectDetection(config).eval()
    model.save_pretrained(tmp_path / "detector")
    CellDetectorImageProcessor().save_pretrained(tmp_path / "detector")
    image, _ = _slide_with_nuclei_on_tile_borders()
    image.save(tmp_path / "slide.png")
    script = tmp_path / "remote.py"
    script.write_text(REMOTE_TILED_PIPELINE)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"))
    result = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "detector"), str(tmp_path / "slide.png"), str(TILE)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    remote = json.loads(result.stdout.strip().splitlines()[-1])
    processor = CellDetectorImageProcessor()
    for tile_size, found in ((None, remote[""]), (TILE, remote[str(TILE)])):
        expected = detect_cells(model, processor, image, threshold=0.05, tile_size=tile_size, overlap=64)
        assert len(found) == len(expected) > 0, tile_size
        for got, want in zip(found, expected):
            assert got["label"] == want.label and got["score"] == pytest.approx(want.score, abs=1e-5)
            assert [got["box"][k] for k in ("xmin", "ymin", "xmax", "ymax")] == [int(v) for v in want.box]
    assert remote[""] != remote[str(TILE)]  # the tiles were really used
