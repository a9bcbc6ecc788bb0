"""The app over real HTTP on loopback, through gradio_client: every endpoint against direct model calls, bad input,
load, the untrained fallback and `python app.py` itself."""

import csv
import json
import os
import re
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from cervix_hf import load_image
from cervix_hf.app.models import UNTRAINED_WARNING, AppModels
from cervix_hf.prediction.explain import attention_received, grad_cam, overlay_heatmap
from cervix_hf.prediction.inference import (
    classify_cervix_type,
    classify_prepost,
    load_classifier,
    load_detector,
    load_prepost,
)

from . import expectations
from .conftest import SHARED_DATA, free_port, launch_app, require_data

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[1]
EDF_IMAGE = SHARED_DATA / "isbi2014-edf" / "EDF010.png"
IARC_CASE = SHARED_DATA / "iarc-colposcopy-atlas" / "images_low_grade" / "case_AABB"


@pytest.fixture(scope="module")
def client(running_app):
    return Client(running_app.local_url, verbose=False)


@pytest.fixture(scope="module")
def photos(intel_sample):
    return [
        intel_sample / "train" / f"Type_{n}" / name for n, name in ((1, "1202.jpg"), (2, "1407.jpg"), (3, "1265.jpg"))
    ]


@pytest.fixture(scope="module")
def pair():
    case = require_data(IARC_CASE)
    return case / "1_After_normal_saline.jpg", case / "2_After_acetic_acid.jpg"


def value(output):
    """An output's value: the app returns some outputs as component updates (value plus label)."""
    return output["value"] if isinstance(output, dict) and output.get("__type__") == "update" else output


def label_probabilities(output) -> dict[str, float]:
    return {item["label"]: item["confidence"] for item in value(output)["confidences"]}


def read_rgb(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def test_cervix_type_matches_the_model_called_directly(client, app_checkpoints, photos):
    model, processor = load_classifier(str(app_checkpoints["colponet"]))
    for photo in photos:
        verdict, probabilities, details = client.predict(handle_file(photo), False, api_name="/classify_cervix_type")
        expected = expectations.type_probabilities(model, processor, photo)
        best = max(expected, key=expected.get)
        assert details["classified"] and details["quality"]["is_acceptable"]
        assert label_probabilities(probabilities) == pytest.approx(expected, abs=1e-5)
        assert details["label"] == best == value(probabilities)["label"]
        assert f"Most probable: {best}" in verdict and "sharp enough" in verdict
        assert details["trained"] is True and UNTRAINED_WARNING not in verdict
        assert details["model"] == f"local model '{app_checkpoints['colponet'].name}'"  # never the server's path


def test_grad_cam_is_the_heat_map_of_the_predicted_class_over_the_photo(client, app_checkpoints, photos):
    model, processor = load_classifier(str(app_checkpoints["colponet"]))
    heatmap = client.predict(handle_file(photos[1]), False, api_name="/cervix_grad_cam")
    image = load_image(photos[1])
    cam, target = grad_cam(model, processor(image, return_tensors="pt")["pixel_values"])
    expected = np.asarray(overlay_heatmap(image, cam), dtype=np.int16)
    shown = read_rgb(value(heatmap))
    assert shown.shape == expected.shape == (image.height, image.width, 3)
    assert np.abs(shown - expected).mean() < 2  # sent as JPEG
    assert model.config.id2label[target] in heatmap["label"]
    assert np.abs(shown - np.asarray(image, dtype=np.int16)).mean() > 5  # coloured, not the bare photo
    # The opacity slider blends the same map more or less: 0 gives back the photo, 1 the map's colours alone.
    for opacity in (0.0, 1.0):
        shown = read_rgb(value(client.predict(handle_file(photos[1]), False, opacity, api_name="/cervix_grad_cam")))
        expected = np.asarray(overlay_heatmap(image, cam, alpha=opacity), dtype=np.int16)
        assert np.abs(shown - expected).mean() < 2
        if opacity == 0.0:
            assert np.abs(shown - np.asarray(image, dtype=np.int16)).mean() < 2


def test_a_blurred_photo_is_rejected_unless_the_user_overrides(client, app_checkpoints, photos, tmp_path):
    blurred = tmp_path / "blurred.jpg"
    cv2.imwrite(str(blurred), cv2.GaussianBlur(cv2.imread(str(photos[0])), (0, 0), 4))
    verdict, probabilities, details = client.predict(handle_file(blurred), False, api_name="/classify_cervix_type")
    assert not details["classified"] and not details["quality"]["is_acceptable"]
    assert "Not classified" in verdict and "rejected as too blurry" in verdict and not value(probabilities)
    assert value(client.predict(handle_file(blurred), False, api_name="/cervix_grad_cam")) is None

    verdict, probabilities, details = client.predict(handle_file(blurred), True, api_name="/classify_cervix_type")
    model, processor = load_classifier(str(app_checkpoints["colponet"]))
    expected = classify_cervix_type(model, processor, blurred, ignore_quality_gate=True)
    assert details["classified"] and "override" in verdict
    assert label_probabilities(probabilities) == pytest.approx(expected.probabilities, abs=1e-5)


def median_threshold(model) -> float:
    """A threshold that keeps about half of the model's detections on EDF_IMAGE, and equals none of their scores."""
    scores = sorted(score for _, score, _ in expectations.detections(model, EDF_IMAGE, 0.0))
    assert len(scores) >= 4, "the tiny detector should find several candidates"
    middle = len(scores) // 2
    return (scores[middle - 1] + scores[middle]) / 2


@pytest.mark.parametrize("threshold_rule", ["zero", "median score"])
def test_cell_detection_matches_the_model_and_exports_it(client, app_checkpoints, threshold_rule):
    model, _ = load_detector(str(app_checkpoints["cell_detector"]))
    threshold = 0.0 if threshold_rule == "zero" else median_threshold(model)
    summary, annotated, counts, csv_path, json_path, cells = client.predict(
        handle_file(EDF_IMAGE), threshold, api_name="/detect_cells"
    )
    expected = expectations.detections(model, EDF_IMAGE, threshold)
    assert expected, "a threshold that keeps nothing would check nothing"
    if threshold_rule == "median score":
        assert len(expected) < len(expectations.detections(model, EDF_IMAGE, 0.0))
    assert counts["headers"] == ["class", "cells"]
    assert counts["data"] == [["nucleus", len(expected)], ["total", len(expected)]]
    assert f"{len(expected)} cell(s) found" in summary
    # Each box's score, class and place, one row per cell in the model's order (best first).
    assert cells["headers"] == ["cell", "class", "score", "xmin", "ymin", "xmax", "ymax"]
    assert len(cells["data"]) == len(expected)
    for number, (row, (label, score, box)) in enumerate(zip(cells["data"], expected, strict=True), start=1):
        assert row[:2] == [number, label] and row[2] == pytest.approx(score, abs=1e-4)
        assert row[3:] == pytest.approx(box, abs=0.06)
    exported = json.loads(Path(json_path).read_text())
    assert exported[0]["image"] == EDF_IMAGE.name and len(exported[0]["detections"]) == len(expected)
    for row, (label, score, box) in zip(exported[0]["detections"], expected, strict=True):
        assert row["label"] == label and row["score"] == pytest.approx(score, abs=1e-5)
        assert [row[k] for k in ("xmin", "ymin", "xmax", "ymax")] == pytest.approx(box, abs=1e-2)
    # The download CSV has the rows `cervix-hf predict` writes for the detector: a row per cell, then the image's.
    with open(csv_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == [*"image row cell label score xmin ymin xmax ymax cells".split(), "count_nucleus", "error"]
    assert [row["row"] for row in rows] == ["cell"] * len(expected) + ["image"]
    assert [float(row["score"]) for row in rows[:-1]] == pytest.approx([score for _, score, _ in expected], abs=1e-5)
    assert rows[-1]["cells"] == rows[-1]["count_nucleus"] == str(len(expected))
    shown = value(annotated)
    assert Image.open(shown["image"]).size == (1024, 1024)
    assert [a["label"] for a in shown["annotations"]] == ["nucleus"]  # one mask per class
    assert annotated["color_map"] == {"nucleus": "#e6194b"}
    # The annotated image to download: the uploaded image at full size, each box outlined in its class's colour
    # (the grey-level original has no such pixel: R = G = B).
    png_path = client.predict(handle_file(EDF_IMAGE), threshold, api_name="/annotated_cells")
    original, drawn = np.asarray(Image.open(EDF_IMAGE).convert("RGB")), np.asarray(Image.open(png_path))
    assert Path(png_path).name == "EDF010_annotated.png" and drawn.shape == original.shape
    assert not (original == (230, 25, 75)).all(axis=-1).any()
    for _, _, (xmin, ymin, xmax, ymax) in expected:
        x, y = int(round(xmin)), int(round((ymin + ymax) / 2))
        around_left_edge = drawn[max(0, y - 1) : y + 2, max(0, x - 1) : x + 2]
        assert (around_left_edge == (230, 25, 75)).all(axis=-1).any(), (xmin, ymin, xmax, ymax)


def test_operating_point_presets_are_the_models_thresholds(client, app_checkpoints):
    model, _ = load_prepost(str(app_checkpoints["prepost_fusion"]))
    for name, point in model.config.operating_points.items():
        slider, info = client.predict(name, 0.5, api_name="/prepost_operating_point")
        assert value(slider) == pytest.approx(point["threshold"]) and name in info
    slider, _ = client.predict("model default", 0.5, api_name="/prepost_operating_point")
    assert value(slider) == pytest.approx(model.config.decision_threshold)
    slider, _ = client.predict("custom threshold", 0.3, api_name="/prepost_operating_point")
    assert value(slider) == 0.3 and slider["interactive"] is True


@pytest.mark.parametrize("operating_point, threshold", [("screening", 0.5), ("custom threshold", 0.9)])
def test_prepost_matches_the_model_called_directly(client, app_checkpoints, pair, operating_point, threshold):
    verdict, probabilities, attention, details = client.predict(
        handle_file(pair[0]), handle_file(pair[1]), operating_point, threshold, api_name="/classify_prepost"
    )
    model, processor = load_prepost(str(app_checkpoints["prepost_fusion"]))
    used = (
        threshold if operating_point == "custom threshold" else model.config.operating_points["screening"]["threshold"]
    )
    probability = expectations.positive_probability(model, processor, pair[0], pair[1])
    label = "Positive" if probability >= used else "Negative"
    assert details["probability"] == pytest.approx(probability, abs=1e-5)
    assert details["threshold"] == pytest.approx(used) and details["label"] == label
    assert f"Decision: {label}" in verdict
    assert label_probabilities(probabilities)["Positive"] == pytest.approx(probability, abs=1e-5)
    expected = classify_prepost(model, processor, pair[0], pair[1], used)  # for its attention map
    post = load_image(pair[1])
    heat = overlay_heatmap(post, attention_received(expected.pre_to_post_attention))
    assert np.abs(read_rgb(value(attention)) - np.asarray(heat, dtype=np.int16)).mean() < 2  # sent as JPEG
    if operating_point == "custom threshold":  # the opacity blends the same map: 0 gives back the post-stain photo
        attention = client.predict(
            handle_file(pair[0]), handle_file(pair[1]), operating_point, threshold, 0.0, api_name="/classify_prepost"
        )[2]
        bare = overlay_heatmap(post, attention_received(expected.pre_to_post_attention), alpha=0.0)
        assert np.abs(read_rgb(value(attention)) - np.asarray(bare, dtype=np.int16)).mean() < 2
        assert np.abs(np.asarray(bare, dtype=np.int16) - np.asarray(heat, dtype=np.int16)).mean() > 5


def test_models_tab_says_where_each_model_came_from_and_that_it_is_trained(client, app_checkpoints):
    cards = client.predict(api_name="/models")[:3]  # then each model's plots
    for card, task in zip(cards, ("colponet", "cell_detector", "prepost_fusion"), strict=True):
        assert f"**Loaded from:** local model '{app_checkpoints[task].name}'\n" in card
        assert str(app_checkpoints[task]) not in card
        # trained for the tests without an evaluation file: said, not "yes" alone
        assert "**Trained:** yes, with no evaluation file (eval_results.json) where it was loaded from" in card


BAD_INPUTS = {
    "truncated JPEG": ("truncated.jpg", "is truncated or corrupt"),
    "text file named .jpg": ("notes.jpg", "not an image file"),
    "enormous (decompression bomb)": ("enormous.png", "over the limit of 100,000,000 pixels"),
}


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, photos):
    folder = tmp_path_factory.mktemp("bad-input")
    data = photos[0].read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (folder / "notes.jpg").write_text("Patient notes, not a photo.\n")
    Image.new("1", (12_000, 12_000)).save(folder / "enormous.png")  # 144 megapixels in 17 kB
    return folder


@pytest.mark.parametrize("kind", BAD_INPUTS)
def test_bad_image_gets_a_clear_error_and_the_next_request_succeeds(client, bad_files, photos, pair, kind):
    name, message = BAD_INPUTS[kind]
    bad = handle_file(bad_files / name)
    calls = {
        "/classify_cervix_type": (bad, False),
        "/cervix_grad_cam": (bad, False),
        "/detect_cells": (bad, 0.5),
        "/classify_prepost": (handle_file(pair[0]), bad, "model default", 0.5),
    }
    for api_name, arguments in calls.items():
        with pytest.raises(Exception, match=f"Cannot load image '{name}': .*{message}"):
            client.predict(*arguments, api_name=api_name)
    _, _, details = client.predict(handle_file(photos[0]), False, api_name="/classify_cervix_type")
    assert details["classified"]


BAD_PREPOST_REQUESTS = {
    "no post-stain image": ((True, False), ("model default", 0.5), "The post-stain image is missing: upload both"),
    "no pre-stain image": ((False, True), ("model default", 0.5), "The pre-stain image is missing"),
    "threshold above 1": ((True, True), ("custom threshold", 1.5), "The threshold must be from 0 to 1, got 1.5"),
    "threshold not a number": ((True, True), ("custom threshold", "high"), "must be a number from 0 to 1, got 'high'"),
}


@pytest.mark.parametrize("case", BAD_PREPOST_REQUESTS)
def test_bad_prepost_request_gets_a_clear_error_and_the_next_request_succeeds(client, pair, case):
    given, settings, message = BAD_PREPOST_REQUESTS[case]
    images = [handle_file(path) if present else None for present, path in zip(given, pair, strict=True)]
    with pytest.raises(Exception, match=message):
        client.predict(*images, *settings, api_name="/classify_prepost")
    _, _, _, details = client.predict(handle_file(pair[0]), handle_file(pair[1]), api_name="/classify_prepost")
    assert details["label"] in ("Negative", "Positive")


def test_no_image_gets_a_clear_error(client):
    with pytest.raises(Exception, match="No photo: upload an image file"):
        client.predict(None, False, api_name="/classify_cervix_type")
    with pytest.raises(Exception, match="The threshold must be a number"):
        client.predict(handle_file(EDF_IMAGE), None, api_name="/detect_cells")


def open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


def answer(api_name: str, outputs) -> tuple:
    """What identifies one answer of an endpoint: the numbers a user reads."""
    if api_name == "/classify_cervix_type":
        return outputs[2]["label"], tuple(sorted(label_probabilities(outputs[1]).items()))
    if api_name == "/detect_cells":
        return outputs[0], tuple(map(tuple, outputs[2]["data"]))
    return outputs[3]["label"], round(outputs[3]["probability"], 6), outputs[3]["threshold"]


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counting open files needs /proc")
def test_forty_requests_from_four_clients_get_their_own_answers_without_leaking_files(running_app, photos, pair):
    edf_images = [SHARED_DATA / "isbi2014-edf" / f"EDF01{n}.png" for n in (0, 1)]
    requests = (  # 12 different requests, so an answer sent to the wrong request shows
        [("/classify_cervix_type", (handle_file(photo), False)) for photo in photos]
        + [("/detect_cells", (handle_file(image), t)) for image in edf_images for t in (0.0, 0.05)]
        + [
            ("/classify_prepost", (handle_file(pair[0]), handle_file(pair[1]), "custom threshold", t))
            for t in (0.1, 0.3, 0.5, 0.7, 0.9)
        ]
    )
    clients = [Client(running_app.local_url, verbose=False) for _ in range(4)]
    # each request alone, one at a time: the answer it must get under load
    alone = [answer(api_name, clients[0].predict(*arguments, api_name=api_name)) for api_name, arguments in requests]
    assert len(set(alone)) == len(requests), "the requests must have different answers to catch crossed ones"
    before = open_files()

    def run(worker: int) -> list[tuple[int, tuple]]:
        results = []
        for i in range(10):
            index = (3 * worker + 5 * i) % len(requests)
            api_name, arguments = requests[index]
            results.append((index, answer(api_name, clients[worker].predict(*arguments, api_name=api_name))))
        return results

    with ThreadPoolExecutor(4) as pool:
        results = [result for batch in pool.map(run, range(4)) for result in batch]
    assert len(results) == 40 and len({index for index, _ in results}) == len(requests)
    for index, got in results:
        assert got == alone[index], f"request {index} ({requests[index][0]}) got another answer under load"
    deadline = time.monotonic() + 5
    while open_files() > before + 5 and time.monotonic() < deadline:  # sockets of finished requests closing
        time.sleep(0.2)
    assert open_files() <= before + 5, f"{open_files() - before} more open files after 40 requests"


@pytest.fixture(scope="module")
def untrained_app(tmp_path_factory):
    """The app on a fresh machine: no flag, no checkpoints folder, the Hub offline (conftest sets HF_HUB_OFFLINE).
    Tiny untrained models stand in for the default ResNet-50 ones to keep the test fast."""
    models = AppModels.from_settings(checkpoints_dir=tmp_path_factory.mktemp("empty"), untrained_size="tiny")
    from cervix_hf import app

    demo = launch_app(app.build_demo(models))
    yield demo
    demo.close()


def test_every_result_of_an_untrained_model_says_so(untrained_app, photos, pair):
    client = Client(untrained_app.local_url, verbose=False)
    verdict, probabilities, details = client.predict(handle_file(photos[0]), False, api_name="/classify_cervix_type")
    assert UNTRAINED_WARNING in verdict and UNTRAINED_WARNING in probabilities["label"]
    # At the answer itself: no "Most probable: Type_1 (100.0%)" that reads as a finding.
    assert f"Untrained model, random output: Most probable: {details['label']}" in verdict
    assert f"{details['probabilities'][details['label']]:.1%}: meaningless" in verdict
    assert details["warning"] == UNTRAINED_WARNING and details["trained"] is False
    assert UNTRAINED_WARNING in client.predict(handle_file(photos[0]), False, api_name="/cervix_grad_cam")["label"]

    summary, annotated, counts, csv_path, json_path, cells = client.predict(
        handle_file(EDF_IMAGE), 0.5, api_name="/detect_cells"
    )
    png_path = client.predict(handle_file(EDF_IMAGE), 0.5, api_name="/annotated_cells")
    texts = (summary, annotated["label"], counts["headers"][1], cells["headers"][2])
    assert all(UNTRAINED_WARNING in text for text in texts)
    assert f"Untrained model, random output: {len(cells['data'])} cell(s) found" in summary
    assert all("UNTRAINED_MODEL" in Path(path).name for path in (csv_path, json_path, png_path))

    verdict, probabilities, attention, details = client.predict(
        handle_file(pair[0]), handle_file(pair[1]), api_name="/classify_prepost"
    )
    assert all(UNTRAINED_WARNING in text for text in (verdict, probabilities["label"], attention["label"]))
    assert f"Untrained model, random output: Decision: {details['label']}" in verdict
    assert f"{details['probability']:.3f}: meaningless" in verdict
    assert details["warning"] == UNTRAINED_WARNING
    # the API offers only the points the loaded model defines: an untrained one has none
    with pytest.raises(
        Exception, match=r"'screening'.*not in the list of choices: \['model default', 'custom threshold'\]"
    ):
        client.predict("screening", 0.5, api_name="/prepost_operating_point")

    for card in client.predict(api_name="/models")[:3]:
        assert "**Loaded from:** untrained default configuration\n" in card and UNTRAINED_WARNING in card


def test_python_app_py_starts_logs_where_models_come_from_and_serves(app_checkpoints, photos, tmp_path):
    """The Space's entry point as a user runs it: flags, environment variables and the start-up log."""
    log = tmp_path / "app.log"
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "CERVIX_HF_COLPONET": str(app_checkpoints["colponet"]),
        "CERVIX_HF_EXAMPLES": str(SHARED_DATA),
    }
    env.pop("CERVIX_HF_CELL_DETECTOR", None)
    env.pop("CERVIX_HF_PREPOST_FUSION", None)
    port = free_port()
    with log.open("w") as output:
        command = [
            sys.executable,
            "app.py",
            "--port",
            str(port),
            "--checkpoints-dir",
            str(tmp_path / "none"),
            "--cell-detector",
            str(app_checkpoints["cell_detector"]),
        ]
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}/"
            deadline = time.monotonic() + 120
            while "Running on local URL" not in log.read_text():
                assert process.poll() is None, f"app.py exited:\n{log.read_text()}"
                assert time.monotonic() < deadline, f"app.py did not start in 120 s:\n{log.read_text()}"
                time.sleep(0.5)
            _, _, details = Client(url, verbose=False).predict(
                handle_file(photos[0]), False, api_name="/classify_cervix_type"
            )
        finally:
            process.terminate()
            process.wait(timeout=30)
    text = log.read_text()
    assert details["model"] == f"local model '{app_checkpoints['colponet'].name}'" and details["trained"]
    assert f"will load from local folder {app_checkpoints['cell_detector']}" in text  # the flag
    assert "Pre/post fusion: Negative/Positive: no trained weights found" in text
    assert "CERVIX_HF_PREPOST_FUSION" in text
    # The hint runs as printed, from where the app was started: this interpreter, not a bare `python`.
    hint = re.search(r"To get real weights: train it \((.+?)\), or point", text).group(1)
    program, option, module, *arguments = shlex.split(hint)
    assert (option, arguments) == ("-m", ["--data", "PAIRS", "--output-dir", "checkpoints/prepost_fusion"])
    assert module.endswith("train.train_prepost_fusion") and Path(REPO_ROOT, program).samefile(sys.executable)
    shown = subprocess.run([program, option, module, "--help"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert shown.returncode == 0 and "--output-dir" in shown.stdout, shown.stderr[-2000:]


def test_moving_a_threshold_decides_again_without_running_the_model(app_checkpoints, tmp_path_factory, pair):
    """The detector and the fusion model run once per image (or pair); each threshold's answer is still the model's
    own at that threshold."""
    from cervix_hf import app

    models = AppModels.from_settings(
        {task: str(folder) for task, folder in app_checkpoints.items()},
        checkpoints_dir=tmp_path_factory.mktemp("no-checkpoints"),
    )
    runs = {"cell_detector": 0, "prepost_fusion": 0}
    for task in runs:
        model = models[task].get().model
        model.register_forward_hook(lambda *_, task=task: runs.__setitem__(task, runs[task] + 1))
    demo = launch_app(app.build_demo(models))
    try:
        client = Client(demo.local_url, verbose=False)
        detector, _ = load_detector(str(app_checkpoints["cell_detector"]))
        for threshold in (0.0, median_threshold(detector), 0.9):
            _, _, counts, _, _, cells = client.predict(handle_file(EDF_IMAGE), threshold, api_name="/detect_cells")
            expected = expectations.detections(detector, EDF_IMAGE, threshold)
            shown = [row[1:3] for row in cells["data"]]
            assert shown == [[label, pytest.approx(score, abs=1e-4)] for label, score, _ in expected]
        assert runs["cell_detector"] == 1
        fusion, processor = load_prepost(str(app_checkpoints["prepost_fusion"]))
        probability = expectations.positive_probability(fusion, processor, *pair)
        for threshold in (probability - 0.01, probability + 0.01):
            _, _, _, details = client.predict(
                handle_file(pair[0]), handle_file(pair[1]), "custom threshold", threshold, api_name="/classify_prepost"
            )
            assert details["label"] == ("Positive" if probability >= threshold else "Negative")
            assert details["probability"] == pytest.approx(probability, abs=1e-5)
        assert runs["prepost_fusion"] == 1
    finally:
        demo.close()


def test_the_batch_tab_predicts_every_file_and_a_zip_with_progress_and_a_csv(client, app_checkpoints, photos, tmp_path):
    import csv
    import zipfile

    broken = tmp_path / "broken.jpg"
    broken.write_text("not a photo")
    summary, table, csv_file = client.predict(
        "Cervix type (photos)",
        [handle_file(photos[0]), handle_file(photos[1]), handle_file(broken)],
        api_name="/predict_batch",
    )
    assert "**3 input(s)**, 1 could not be read" in summary
    rows = {row[0]: dict(zip(table["headers"], row)) for row in table["data"]}
    assert set(rows) == {photos[0].name, photos[1].name, "broken.jpg"}  # the user's names, not server paths
    model, processor = load_classifier(str(app_checkpoints["colponet"]))
    for photo in photos[:2]:
        expected = expectations.type_probabilities(model, processor, photo)
        got = {name: rows[photo.name][f"probability_{name}"] for name in expected}
        assert rows[photo.name]["status"] == "classified" and got == pytest.approx(expected, abs=1e-5)
    assert rows["broken.jpg"]["status"] == "error" and "not an image" in rows["broken.jpg"]["error"]
    assert str(tmp_path) not in rows["broken.jpg"]["error"] and "/tmp/" not in json.dumps(table["data"])
    with open(csv_file, newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 3

    edf = [SHARED_DATA / "isbi2014-edf" / f"EDF01{n}.png" for n in (0, 1)]
    archive = tmp_path / "fields.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for image in edf:
            zipped.write(image, f"slide/{image.name}")
    summary, table, _ = client.predict(
        "Cell detection (Pap-smear images)", [handle_file(archive)], api_name="/predict_batch"
    )
    detector, detector_processor = load_detector(str(app_checkpoints["cell_detector"]))
    threshold = detector.config.box_score_threshold
    headers = table["headers"]
    for image in edf:
        mine = [dict(zip(headers, row)) for row in table["data"] if row[0] == f"fields/slide/{image.name}"]
        expected = expectations.detections(detector, image, threshold)
        assert [row["row"] for row in mine] == ["cell"] * len(expected) + ["image"]
        assert [row["label"] for row in mine[:-1]] == [label for label, _, _ in expected]

    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zipped:
        zipped.write(photos[0], "../../outside.jpg")
    with pytest.raises(Exception, match="holds a file outside its own folder"):
        client.predict("Cervix type (photos)", [handle_file(evil)], api_name="/predict_batch")


def test_the_batch_tab_refuses_more_than_its_bound(client, photos, monkeypatch):
    from cervix_hf.app import batch_tab

    monkeypatch.setattr(batch_tab, "MAX_BATCH_FILES", 1)  # the app runs in this process
    with pytest.raises(Exception, match="2 images: at most 1 per batch here"):
        client.predict(
            "Cervix type (photos)", [handle_file(photos[0]), handle_file(photos[1])], api_name="/predict_batch"
        )


def test_inputs_that_cannot_be_what_the_model_takes_get_a_specific_message(client, photos, pair, tmp_path):
    strip = tmp_path / "strip.jpg"
    Image.open(photos[0]).convert("RGB").resize((900, 200)).save(strip)  # 4.5:1, a strip, not a photo
    with pytest.raises(Exception, match=r"'strip.jpg': the image is 900x200 pixels, 4.5 times longer than it is wide"):
        client.predict(handle_file(strip), False, api_name="/classify_cervix_type")
    with pytest.raises(Exception, match="The pre-stain and post-stain images are the same picture"):
        client.predict(
            handle_file(pair[0]), handle_file(pair[0]), "custom threshold", 0.5, api_name="/classify_prepost"
        )
    small = tmp_path / "small.jpg"
    Image.open(pair[1]).convert("RGB").resize((200, 150)).save(small)
    width, height = Image.open(pair[0]).size
    with pytest.raises(
        Exception,
        match=rf"The pre-stain image is {width}x{height} pixels and the post-stain image "
        r"200x150: more than 4 times apart in size",
    ):
        client.predict(handle_file(pair[0]), handle_file(small), "custom threshold", 0.5, api_name="/classify_prepost")
    # The same pair at other sizes of one camera is still decided.
    decided = client.predict(
        handle_file(pair[0]), handle_file(pair[1]), "custom threshold", 0.5, api_name="/classify_prepost"
    )
    assert "Decision:" in decided[0]


def test_without_a_folder_given_the_examples_come_from_examples_then_the_sample_data(tmp_path, monkeypatch, caplog):
    """`examples/` in the current folder (a Space's, as push-space stages it) wins over the project's sample data;
    a folder given always wins; the log says where the examples came from, or that there are none."""
    from cervix_hf.app.main import EXAMPLES_ENV_VAR, app_examples
    from cervix_hf.data.examples import AppExamples, default_examples, find_examples
    from cervix_hf.sample_data import SAMPLE_DATA_ENV

    require_data(SHARED_DATA)
    monkeypatch.delenv(EXAMPLES_ENV_VAR, raising=False)
    monkeypatch.chdir(tmp_path)
    caplog.set_level("INFO", logger="cervix_hf.app")
    assert default_examples()[0] == SHARED_DATA
    assert app_examples() == find_examples(SHARED_DATA)
    assert f"Examples from {SHARED_DATA}: 3 photo(s), 3 Pap-smear image(s), 3 pre/post pair(s)." in caplog.text

    photo = tmp_path / "examples" / "Type_2" / "mine.jpg"
    photo.parent.mkdir(parents=True)
    Image.new("RGB", (64, 64)).save(photo)
    caplog.clear()
    assert default_examples()[0] == tmp_path / "examples"
    assert app_examples() == AppExamples(cervix_type=[str(photo)])
    assert f"Examples from {tmp_path / 'examples'}: 1 photo(s), 0 Pap-smear image(s)" in caplog.text

    monkeypatch.setenv(EXAMPLES_ENV_VAR, str(SHARED_DATA))
    assert app_examples() == find_examples(SHARED_DATA)

    monkeypatch.delenv(EXAMPLES_ENV_VAR)
    photo.unlink()
    monkeypatch.setenv(SAMPLE_DATA_ENV, str(tmp_path / "no-sample-data"))
    caplog.clear()
    assert default_examples()[0] is None and app_examples() == AppExamples()
    assert f"No example images: none given (--examples, ${EXAMPLES_ENV_VAR}) and none found in" in caplog.text
