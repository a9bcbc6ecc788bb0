"""The Pap cell tab and the Batch tab with the cell classifier, over HTTP, on a saved tiny cell classifier: the same
answer as the model called directly, the decision at each operating point or a custom threshold, and the errors a
user sees."""

import numpy as np
import pytest
import torch
from gradio_client import Client, handle_file
from PIL import Image

from cervix_hf import CellClassifierForImageClassification, CellClassifierImageProcessor
from cervix_hf.prediction.inference import classify_cell
from cervix_hf.registry import family

from .conftest import launch_app

POINTS = {
    "screening": {"threshold": 0.05, "sensitivity": 0.97, "specificity": 0.4, "achieved": True},
    "balanced": {"threshold": 0.5, "sensitivity": 0.9, "specificity": 0.8, "achieved": True},
    "confirmatory": {"threshold": 0.95, "sensitivity": 0.3, "specificity": 0.96, "achieved": True},
}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    model = CellClassifierForImageClassification(family("cell_classifier").config("tiny", operating_points=POINTS))
    folder = tmp_path_factory.mktemp("cell-classifier")
    model.eval().save_pretrained(folder)
    CellClassifierImageProcessor().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def cells(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cells")
    paths = []
    for seed in range(2):
        path = folder / f"cell{seed}.png"
        Image.fromarray(np.random.default_rng(seed).integers(0, 255, (120, 110, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def client(model_dir, tmp_path_factory):
    from cervix_hf import app
    from cervix_hf.app.models import AppModels

    models = AppModels.from_settings(
        {"cell_classifier": str(model_dir)}, checkpoints_dir=tmp_path_factory.mktemp("no-checkpoints")
    )
    demo = launch_app(app.build_demo(models, tmp_path_factory.mktemp("no-examples")))
    yield Client(demo.local_url, verbose=False)
    demo.close()


def labels_of(output) -> dict[str, float]:
    output = output.get("value", output)  # an update carries the label in "value"
    return {item["label"]: item["confidence"] for item in output["confidences"]}


@pytest.mark.parametrize("choice, threshold", [("screening", 0.5), ("confirmatory", 0.5), ("custom threshold", 0.3)])
def test_the_tab_answers_as_the_model_called_directly(client, model_dir, cells, choice, threshold):
    model = CellClassifierForImageClassification.from_pretrained(model_dir).eval()
    processor = CellClassifierImageProcessor.from_pretrained(model_dir)
    for cell in cells:
        verdict, classes, groups, details = client.predict(
            handle_file(cell), choice, threshold, api_name="/classify_cell"
        )
        chosen = {"threshold": threshold} if choice == "custom threshold" else {"operating_point": choice}
        expected = classify_cell(model, processor, Image.open(cell), **chosen)
        assert labels_of(classes) == pytest.approx(expected["probabilities"], abs=1e-5)
        assert labels_of(groups) == pytest.approx(expected["groups"], abs=1e-5)
        assert details["decision"] == expected["decision"]
        assert details["threshold"] == pytest.approx(POINTS[choice]["threshold"] if choice in POINTS else threshold)
        assert f"Decision: {expected['decision']}" in verdict and "not a diagnosis" in verdict


def test_bad_requests_get_a_clear_error(client, cells, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_text("not an image")
    with pytest.raises(Exception, match="not an image"):
        client.predict(handle_file(broken), "model default", 0.5, api_name="/classify_cell")
    with pytest.raises(Exception, match="operating point"):
        client.predict(handle_file(cells[0]), "triage", 0.5, api_name="/classify_cell")
    with pytest.raises(Exception, match="threshold"):
        client.predict(handle_file(cells[0]), "custom threshold", 1.5, api_name="/classify_cell")
    with pytest.raises(Exception, match="No cell image"):
        client.predict(None, "model default", 0.5, api_name="/classify_cell")


def test_the_batch_tab_takes_the_cell_classifier(client, model_dir, cells):
    summary, table, csv_file = client.predict(
        "Pap cell (single-cell images)", [handle_file(c) for c in cells], api_name="/predict_batch"
    )
    rows = {row[0]: dict(zip(table["headers"], row)) for row in table["data"]}
    assert set(rows) == {cell.name for cell in cells}
    model = CellClassifierForImageClassification.from_pretrained(model_dir).eval()
    processor = CellClassifierImageProcessor.from_pretrained(model_dir)
    for cell in cells:
        expected = classify_cell(model, processor, Image.open(cell))
        assert rows[cell.name]["decision"] == expected["decision"]
        assert rows[cell.name]["probability_abnormal"] == pytest.approx(expected["groups"]["abnormal"], abs=1e-5)
