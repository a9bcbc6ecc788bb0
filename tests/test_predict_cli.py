"""`cervix-hf predict` over many inputs, as a researcher runs it: folders, globs and lists in; CSV or JSON Lines out,
one row per photo, cell or pair; bad files recorded and counted; `--resume`; two processes merged into what one
writes; and errors that say which argument is wrong."""

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from cervix_hf import (
    CellDetectorForObjectDetection,
    CellDetectorImageProcessor,
    PrePostFusionForImageClassification,
    PrePostFusionImageProcessor,
)
from cervix_hf.cli.predict import main
from cervix_hf.data import read_iarc_atlas
from cervix_hf.prediction.batch import InputError, find_inputs
from cervix_hf.prediction.inference import load_classifier
from cervix_hf.registry import cell_detector_config, prepost_config

from . import expectations
from .conftest import SHARED_DATA, free_port, require_data

REPO_ROOT = Path(__file__).resolve().parents[1]


def read_csv(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def probabilities(row) -> dict[str, float]:
    return {key.removeprefix("probability_"): float(row[key]) for key in row if key.startswith("probability_")}


@pytest.fixture
def photo_folder(intel_photos, tmp_path):
    """A folder as a user's: three sharp photos in subfolders, a blurred copy and a file that is not an image."""
    folder = tmp_path / "photos"
    for index, photo in enumerate(intel_photos[::40][:3]):
        target = folder / f"visit{index}" / photo.name
        target.parent.mkdir(parents=True)
        shutil.copy(photo, target)
    sharp = np.asarray(Image.open(intel_photos[0]).convert("RGB"))
    Image.fromarray(cv2.GaussianBlur(sharp, (0, 0), 4)).save(folder / "blurry.jpg")
    (folder / "broken.jpg").write_text("not a photo")
    return folder


def test_a_folder_becomes_one_row_per_photo_with_the_gate_and_the_probabilities(
    tiny_colponet_dir, photo_folder, tmp_path, capsys
):
    output = tmp_path / "predictions.csv"
    code = main(["--model", str(tiny_colponet_dir), str(photo_folder), "--output", str(output), "--batch-size", "2"])
    err = capsys.readouterr().err
    assert code == 1  # one file could not be read: said by the exit code, after every other photo was done
    rows = {Path(row["image"]).name: row for row in read_csv(output)}
    expected_files = {p.name for p in photo_folder.rglob("*") if p.is_file()}
    assert set(rows) == expected_files and len(read_csv(output)) == 5
    model, processor = load_classifier(str(tiny_colponet_dir))
    for path in photo_folder.glob("visit*/*.jpg"):
        row = rows[path.name]
        expected = expectations.type_probabilities(model, processor, path)
        assert row["status"] == "classified" and row["quality_acceptable"] == "True"
        assert probabilities(row) == pytest.approx(expected, abs=1e-5)
        assert row["label"] == max(expected, key=expected.get)
    assert rows["blurry.jpg"]["status"] == "rejected by the quality gate" and rows["blurry.jpg"]["label"] == ""
    assert "too blurry" in rows["blurry.jpg"]["quality_message"]
    assert rows["broken.jpg"]["status"] == "error" and "broken.jpg" in rows["broken.jpg"]["error"]
    assert "5 input(s) predicted, 1 failed" in err and "not a diagnosis" in err


def test_every_input_form_names_the_same_photos_and_both_formats_hold_the_same_rows(
    tiny_colponet_dir, photo_folder, tmp_path, capsys
):
    images = sorted(str(p) for p in photo_folder.rglob("*.jpg"))
    (tmp_path / "list.txt").write_text("# photos\n" + "\n".join(os.path.relpath(p, tmp_path) for p in images) + "\n")
    (tmp_path / "list.csv").write_text("image,note\n" + "".join(f"{p},x\n" for p in images))
    forms = {
        "folder": [str(photo_folder)],
        "glob": [str(photo_folder / "**" / "*.jpg")],
        "files": images,
        "txt list": [str(tmp_path / "list.txt")],
        "csv list": [str(tmp_path / "list.csv")],
    }
    for form, sources in forms.items():
        found = sorted(str(Path(item.paths[0]).resolve()) for item in find_inputs(sources, "colponet"))
        assert found == [str(Path(p).resolve()) for p in images], form
    csv_out, jsonl_out = tmp_path / "out.csv", tmp_path / "out.jsonl"
    main(["--model", str(tiny_colponet_dir), *images, "--output", str(csv_out), "--quiet"])
    main(["--model", str(tiny_colponet_dir), str(tmp_path / "list.txt"), "--output", str(jsonl_out)])
    as_csv = {Path(row["image"]).name: row for row in read_csv(csv_out)}
    as_json = {Path(row["image"]).name: row for row in map(json.loads, jsonl_out.read_text().splitlines())}
    assert as_csv.keys() == as_json.keys()
    for name, row in as_json.items():
        assert row["status"] == as_csv[name]["status"]
        if row["status"] == "classified":
            assert probabilities(row) == pytest.approx(probabilities(as_csv[name]), abs=1e-6)
    capsys.readouterr()


def test_resume_keeps_finished_rows_skips_their_photos_and_retries_failures(
    tiny_colponet_dir, photo_folder, intel_photos, tmp_path, capsys
):
    output = tmp_path / "predictions.csv"
    args = ["--model", str(tiny_colponet_dir), "--output", str(output), "--quiet"]
    assert main([*args, str(photo_folder)]) == 1
    first = {row["image"]: row for row in read_csv(output)}
    shutil.copy(intel_photos[1], photo_folder / "broken.jpg")  # the user replaces the bad file
    extra = photo_folder / "later" / "new.jpg"
    extra.parent.mkdir()
    shutil.copy(intel_photos[2], extra)
    capsys.readouterr()
    assert main([*args, "--resume", str(photo_folder)]) == 0
    err = capsys.readouterr().err
    assert "6 input(s), 4 already done" in err and "2 input(s) predicted, 0 failed" in err
    rows = read_csv(output)
    assert len(rows) == len({row["image"] for row in rows}) == 6  # each photo once
    by_image = {row["image"]: row for row in rows}
    for image, row in first.items():
        if row["status"] != "error":
            assert by_image[image] == row  # untouched
    assert by_image[str(photo_folder / "broken.jpg")]["status"] == "classified"
    assert by_image[str(extra)]["status"] == "classified"


def test_resume_redoes_a_line_cut_short_and_a_row_missing_its_probabilities_and_keeps_formula_like_names(
    tiny_colponet_dir, intel_photos, tmp_path, monkeypatch, capsys
):
    """A run killed while writing its last line, a row whose probabilities were lost, and a photo named like a
    spreadsheet formula: `cervix-hf predict --resume` ends with each photo once, every row whole."""
    names = ["'=HYPERLINK(x).jpg", "b.jpg", "c.jpg", "d.jpg"]
    for name, photo in zip(names, intel_photos[::30]):
        shutil.copy(photo, tmp_path / name)
    monkeypatch.chdir(tmp_path)  # the names as the user typed them are the rows' keys
    output = tmp_path / "predictions.csv"
    args = ["--model", str(tiny_colponet_dir), *names, "--output", str(output), "--quiet", "--runtime", "torch"]
    assert main(args) == 0
    first = read_csv(output)
    assert [row["image"] for row in first] == ["''=HYPERLINK(x).jpg", *names[1:]]  # shown as text, not run
    damaged = next(i for i, row in enumerate(first[1:3], start=1) if row["status"] == "classified")
    lost = [
        {**row, **({k: "" for k in row if k.startswith("probability_")} if i == damaged else {})}
        for i, row in enumerate(first)
    ]
    with open(output, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(first[0]))
        writer.writeheader()
        writer.writerows(lost)
    with open(output, newline="", encoding="utf-8") as handle:
        text = handle.read()
    with open(output, "w", newline="", encoding="utf-8") as handle:
        handle.write(text[: text.rindex(names[-1]) + 3])  # killed while writing d.jpg's row: "d.j"
    capsys.readouterr()

    command = [str(Path(sys.executable).with_name("cervix-hf")), "predict", *args, "--resume"]
    resumed = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "4 input(s), 2 already done" in resumed.stderr and "2 input(s) predicted, 0 failed" in resumed.stderr
    rows = read_csv(output)
    assert sorted(row["image"] for row in rows) == sorted(row["image"] for row in first)  # each photo once
    by_image = {row["image"]: row for row in rows}
    for row in first:
        again = by_image[row["image"]]
        assert again["status"] == row["status"] and again["label"] == row["label"]
        assert probabilities(again) == pytest.approx(probabilities(row), abs=1e-5)
    assert rows[0] == first[0]  # the formula-like name was finished, kept as it was written


def test_resume_redoes_a_detector_image_with_a_cell_row_cut_short_or_unreadable(detector_dir, tmp_path, capsys):
    data = require_data(SHARED_DATA / "isbi2014-edf")
    images = [str(data / f"EDF00{index}.png") for index in range(3)]
    output = tmp_path / "cells.jsonl"
    args = [
        "--model",
        str(detector_dir),
        *images,
        "--output",
        str(output),
        "--threshold",
        "0.05",
        "--runtime",
        "torch",
        "--quiet",
    ]
    assert main(args) == 0
    first = [json.loads(line) for line in output.read_text().splitlines()]
    cells = {image: [row for row in first if row["image"] == image and row["row"] == "cell"] for image in images}
    assert all(cells.values())  # every image has cells to lose
    broken = [dict(row) for row in first]
    broken[first.index(cells[images[1]][0])]["score"] = None  # a cell of the second image lost its score
    lines = [json.dumps(row) for row in broken[: first.index(cells[images[2]][-1]) + 1]]
    output.write_text("\n".join(lines)[:-10])  # killed inside the third image's last cell row, before its summary
    capsys.readouterr()

    assert main([*args, "--resume"]) == 0
    err = capsys.readouterr().err
    assert "3 input(s), 1 already done" in err and "2 input(s) predicted, 0 failed" in err
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    for image in images:
        (summary,) = [row for row in rows if row["image"] == image and row["row"] == "image"]
        again = [row for row in rows if row["image"] == image and row["row"] == "cell"]
        assert summary["cells"] == len(again) == len(cells[image])
        for mine, theirs in zip(again, cells[image]):
            assert mine["label"] == theirs["label"] and mine["score"] == pytest.approx(theirs["score"], abs=1e-5)


@pytest.fixture(scope="module")
def detector_dir(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("cell_detector")
    CellDetectorForObjectDetection(cell_detector_config("tiny", box_score_threshold=0.0)).save_pretrained(folder)
    CellDetectorImageProcessor().save_pretrained(folder)
    return folder


def test_the_detector_writes_a_row_per_cell_and_a_summary_per_image(detector_dir, tmp_path, capsys):
    data = require_data(SHARED_DATA / "isbi2014-edf")
    images = [data / "EDF000.png", data / "EDF001.png"]
    output = tmp_path / "cells.jsonl"
    assert (
        main(
            [
                "--model",
                str(detector_dir),
                *map(str, images),
                "--output",
                str(output),
                "--threshold",
                "0.05",
                "--runtime",
                "torch",
            ]
        )
        == 0
    )
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    model = CellDetectorForObjectDetection.from_pretrained(detector_dir).eval()
    for image in images:
        cells = [row for row in rows if row["image"] == str(image) and row["row"] == "cell"]
        (summary,) = [row for row in rows if row["image"] == str(image) and row["row"] == "image"]
        expected = expectations.detections(model, image, 0.05)
        assert len(expected) > 0 and len(cells) == len(expected) == summary["cells"]
        for cell, (label, score, box) in zip(cells, expected):
            assert cell["label"] == label and cell["score"] == pytest.approx(score, abs=1e-5)
            assert [cell[k] for k in ("xmin", "ymin", "xmax", "ymax")] == pytest.approx(box, abs=0.02)
        for name in model.config.id2label.values():
            assert summary[f"count_{name}"] == sum(label == name for label, _, _ in expected)
    capsys.readouterr()


def test_the_fusion_model_takes_a_pairs_csv_or_the_atlas_folder_and_refuses_single_photos(tmp_path, capsys):
    atlas = require_data(SHARED_DATA / "iarc-colposcopy-atlas")
    torch.manual_seed(0)
    folder = tmp_path / "fusion"
    model = PrePostFusionForImageClassification(prepost_config("tiny")).eval()
    model.save_pretrained(folder)
    processor = PrePostFusionImageProcessor()
    processor.save_pretrained(folder)
    records = read_iarc_atlas(atlas).records
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("pre,post,label\n" + "".join(f"{r.pre_path},{r.post_path},{r.label}\n" for r in records[:3]))
    output = tmp_path / "decisions.csv"
    assert main(["--model", str(folder), str(pairs), "--output", str(output), "--threshold", "0.5"]) == 0
    rows = read_csv(output)
    assert len(rows) == 3
    for row, record in zip(rows, records[:3]):
        expected = expectations.positive_probability(model, processor, record.pre_path, record.post_path)
        assert (row["pre"], row["post"]) == (record.pre_path, record.post_path)
        assert float(row["probability"]) == pytest.approx(expected, abs=1e-5)
        assert row["label"] == ("Positive" if expected >= 0.5 else "Negative") and row["threshold"] == "0.5"
    assert [item.paths for item in find_inputs([str(atlas)], "prepost_fusion")] == [
        (r.pre_path, r.post_path) for r in records
    ]
    assert main(["--model", str(folder), str(records[0].pre_path)]) == 2
    assert "the fusion model takes pairs" in capsys.readouterr().err


def test_bad_arguments_are_named(tiny_colponet_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["--model", str(tmp_path / "nowhere"), "x.jpg"]) == 2
    assert f"no such folder ({tmp_path / 'nowhere'})" in capsys.readouterr().err
    assert main(["--model", "someone/colponet", "x.jpg"]) == 2  # a Hub id that the Hub does not provide here
    assert "the Hub did not provide someone/colponet" in capsys.readouterr().err
    assert main(["--model", str(tiny_colponet_dir), str(tmp_path / "missing.jpg")]) == 2
    assert f"{tmp_path / 'missing.jpg'}: no such file or folder" in capsys.readouterr().err
    assert main(["--model", str(tiny_colponet_dir), str(tmp_path / "*.png")]) == 2
    assert "the pattern matches no file" in capsys.readouterr().err
    assert main(["--model", str(tiny_colponet_dir), "--resume", str(tmp_path)]) == 2
    assert "--resume and several processes need --output" in capsys.readouterr().err
    with pytest.raises(InputError, match="needs a column named 'image' or 'path'"):
        (tmp_path / "bad.csv").write_text("file\nx.jpg\n")
        find_inputs([str(tmp_path / "bad.csv")], "colponet")


@pytest.mark.slow
def test_two_processes_write_what_one_process_writes(tiny_colponet_dir, photo_folder, tmp_path):
    one, two = tmp_path / "one.csv", tmp_path / "two.csv"
    command = ["-m", "cervix_hf.predict", "--model", str(tiny_colponet_dir), str(photo_folder), "--batch-size", "2"]
    single = subprocess.run(
        [sys.executable, *command, "--output", str(one)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )
    assert single.returncode == 1, single.stderr[-2000:]  # the broken file
    launcher = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(free_port()),
    ]
    both = subprocess.run(
        [*launcher, *command, "--output", str(two)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )
    assert "process 0:" in both.stderr and "process 1:" in both.stderr, both.stderr[-3000:]
    assert not list(tmp_path.glob("two.csv.part-*"))  # the shards were merged and removed
    merged, alone = read_csv(two), sorted(read_csv(one), key=lambda row: row["image"])
    assert [row["image"] for row in merged] == [row["image"] for row in alone]  # sorted, each photo once
    numbers = ("probability_", "laplacian_variance", "fft_score")
    for mine, theirs in zip(merged, alone):
        # Floats agree to the last digits: each torchrun process computes with one thread, so sums run in
        # another order; everything else is identical.
        assert {k: v for k, v in mine.items() if not k.startswith(numbers)} == {
            k: v for k, v in theirs.items() if not k.startswith(numbers)
        }
        for key in (k for k in mine if k.startswith(numbers) and mine[k]):
            assert float(mine[key]) == pytest.approx(float(theirs[key]), abs=1e-6), key
