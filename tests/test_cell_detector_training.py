"""The detector's training script end to end: real EDF nuclei, SIPaKMeD-layout fixtures with empty images."""

import csv
import json
from pathlib import Path

import pytest
from PIL import Image

from cervix_hf import CellDetectorForObjectDetection, CellDetectorImageProcessor
from cervix_hf.prediction.inference import detect_cells
from train import train_cell_detector

from .conftest import SHARED_DATA, require_data

FAST = [
    "--model-size",
    "tiny",
    "--epochs",
    "1",
    "--batch-size",
    "2",
    "--workers",
    "0",
    "--no-progress-bar",
    "--min-size",
    "256",
    "--max-size",
    "256",
    "--augmentation",
    "flip",
]


@pytest.fixture(scope="module")
def edf_run(tmp_path_factory):
    data = require_data(SHARED_DATA / "isbi2014-edf")
    output_dir = tmp_path_factory.mktemp("edf-run")
    args = train_cell_detector.get_args_parser().parse_args(
        ["--data", str(data), "--test-names", "EDF010", "EDF011", "--output-dir", str(output_dir), *FAST]
    )
    return output_dir, train_cell_detector.main(args)


@pytest.mark.slow
def test_edf_run_writes_model_eval_file_and_detection_exports(edf_run):
    output_dir, results = edf_run
    saved = json.loads((output_dir / "eval_results.json").read_text())
    assert saved["data"]["test_images"] == ["EDF010.png", "EDF011.png"]
    assert saved["data"]["images_per_split"] == {"train": 8, "validation": 2, "test": 2}
    per_class = saved["metrics"]["per_class"]["nucleus"]
    assert per_class["num_ground_truth"] == 36 + 37  # boxes in EDF010 and EDF011
    assert 0.0 <= saved["metrics"]["map"] <= saved["metrics"]["map_50"] <= 1.0

    exported = json.loads((output_dir / "detections.json").read_text())
    assert [Path(row["image"]).name for row in exported] == ["EDF010.png", "EDF011.png"]
    with (output_dir / "detections.csv").open() as handle:
        rows = list(csv.DictReader(handle))  # the rows `cervix-hf predict` writes: a row per cell, one per image
    cells = [row for row in rows if row["row"] == "cell"]
    assert len(cells) == sum(len(row["detections"]) for row in exported)
    assert all(float(row["score"]) > saved["export_threshold"] for row in cells)
    summaries = {Path(row["image"]).name: int(row["cells"]) for row in rows if row["row"] == "image"}
    assert summaries == {Path(row["image"]).name: len(row["detections"]) for row in exported}


@pytest.mark.slow
def test_the_run_writes_its_model_card_from_the_real_evaluation(edf_run):
    output_dir, results = edf_run
    text = (output_dir / "README.md").read_text()
    nucleus = results["metrics"]["per_class"]["nucleus"]
    assert f"| nucleus | {nucleus['ap']:.3f} | {nucleus['ap_50']:.3f} | {nucleus['recall']:.3f} | 73 |" in text
    assert f"- **mAP@.5:** {results['metrics']['map_50']:.3f}" in text
    assert "ISBI 2014 Overlapping Cervical Cytology" in text


@pytest.mark.slow
def test_saved_detector_reproduces_the_exported_detections(edf_run):
    output_dir, _ = edf_run
    exported = json.loads((output_dir / "detections.json").read_text())[0]
    model = CellDetectorForObjectDetection.from_pretrained(output_dir).eval()
    processor = CellDetectorImageProcessor.from_pretrained(output_dir)
    again = [d for d in detect_cells(model, processor, exported["image"], threshold=0.5)]
    assert len(again) == len(exported["detections"])
    for found, saved in zip(again, exported["detections"]):
        assert found.score == pytest.approx(saved["score"], abs=1e-5)
        assert found.box == pytest.approx((saved["xmin"], saved["ymin"], saved["xmax"], saved["ymax"]), abs=1e-3)


def _write_sipakmed_cluster(folder: Path, name: str, cells: list[tuple[int, int, int, int]]):
    folder.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", (160, 120), (235, 225, 230))
    for index, (x0, y0, x1, y1) in enumerate(cells, start=1):
        image.paste((120, 40, 120), (x0, y0, x1, y1))
        outline = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
        (folder / f"{name}_cyt{index:02d}.dat").write_text("\n".join(f"{x},{y}" for x, y in outline))
        (folder / f"{name}_nuc{index:02d}.dat").write_text("\n".join(f"{x} {y}" for x, y in outline))
    image.save(folder / f"{name}.bmp")


def test_sipakmed_layout_trains_and_evaluates_with_empty_images(tmp_path):
    root = tmp_path / "SIPaKMeD"
    classes = ["Dyskeratotic", "Koilocytotic", "Metaplastic", "Parabasal", "Superficial-Intermediate"]
    for class_index, name in enumerate(classes):
        folder = root / f"im_{name}" / f"im_{name}"  # the mirror's doubly nested variant
        for cluster in range(4):
            cells = [] if cluster == 0 else [(10 + 20 * class_index, 20, 50 + 20 * class_index, 70)]
            _write_sipakmed_cluster(folder, f"{cluster + 1:03d}", cells)
    output_dir = tmp_path / "run"
    args = train_cell_detector.get_args_parser().parse_args(
        ["--data", str(root), "--output-dir", str(output_dir), *FAST]
    )
    results = train_cell_detector.main(args)
    assert results["label_names"] == classes
    splits = results["data"]["images_per_split"]
    assert sum(splits.values()) == 20
    assert (output_dir / "model.safetensors").is_file() and (output_dir / "detections.json").is_file()


def test_csv_format_without_annotations_is_a_clear_error(tmp_path):
    args = train_cell_detector.get_args_parser().parse_args(
        ["--data", str(tmp_path), "--format", "csv", "--output-dir", str(tmp_path / "out")]
    )
    with pytest.raises(SystemExit, match="--annotations"):
        train_cell_detector.main(args)
