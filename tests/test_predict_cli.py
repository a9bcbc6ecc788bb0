"""`python -m cervix_hf.predict`: what a user sees for good, blurry and broken photos."""

import json

import cv2
import numpy as np
from PIL import Image

from cervix_hf.cli.predict import main


def test_predict_prints_types_gate_verdicts_and_errors(tiny_colponet_dir, intel_photos, tmp_path, capsys):
    sharp = intel_photos[0]
    blurry = tmp_path / "blurry.jpg"
    Image.fromarray(cv2.GaussianBlur(np.asarray(Image.open(sharp).convert("RGB")), (0, 0), 4)).save(blurry)
    broken = tmp_path / "broken.jpg"
    broken.write_text("not a photo")

    code = main(["--model", str(tiny_colponet_dir), "--json", str(sharp), str(blurry), str(broken)])
    rows = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]

    assert code == 1  # one photo could not be read
    assert rows[0]["classified"] is True and rows[0]["label"] in {"Type_1", "Type_2", "Type_3"}
    assert abs(sum(rows[0]["probabilities"].values()) - 1) < 1e-5
    assert rows[1]["classified"] is False and rows[1]["quality"]["is_acceptable"] is False
    assert "broken.jpg" in rows[2]["error"] and "not an image" in rows[2]["error"]


def test_predict_can_override_the_gate_and_says_it_is_not_a_diagnosis(tiny_colponet_dir, tmp_path, capsys):
    flat = tmp_path / "flat.png"
    Image.new("RGB", (300, 300), (120, 60, 60)).save(flat)
    assert main(["--model", str(tiny_colponet_dir), str(flat)]) == 0
    out = capsys.readouterr().out
    assert "not a diagnosis" in out and "not classified" in out
    assert main(["--model", str(tiny_colponet_dir), "--ignore-quality-gate", str(flat)]) == 0
    assert "Type_" in capsys.readouterr().out


def test_predict_with_a_missing_model_is_a_clear_error(tmp_path, capsys):
    assert main(["--model", str(tmp_path / "nowhere"), "x.jpg"]) == 2
    assert "cannot load the model" in capsys.readouterr().err
