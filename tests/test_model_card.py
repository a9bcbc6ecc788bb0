"""Model cards: rendered by every run from its evaluation file, and refused when a number disagrees with it."""

import json
import re
import shutil

import pytest
from huggingface_hub import ModelCard

from cervix_hf.hub.cards import (
    REQUIRED_SECTIONS,
    TEMPLATES_DIR,
    ModelCardError,
    build_model_card,
    check_model_card,
    render_model_card,
)
from train import render_card

from .model_runs import RUNS


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One finished tiny run per model type (finish_run wrote README.md)."""
    root = tmp_path_factory.mktemp("runs")
    return {model_type: make(root / model_type) for model_type, make in RUNS.items()}


@pytest.fixture
def run_copy(runs, tmp_path):
    """A copy of a run that a test may tamper with."""

    def copy(model_type: str):
        return shutil.copytree(runs[model_type], tmp_path / model_type)

    return copy


def edit_json(path, edit):
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("model_type", list(RUNS))
def test_every_run_writes_a_card_with_every_section_and_the_files_numbers(runs, model_type):
    card = ModelCard.load(runs[model_type] / "README.md")
    eval_results = json.loads((runs[model_type] / "eval_results.json").read_text())
    for section in REQUIRED_SECTIONS:
        assert f"## {section}\n" in card.text or f"### {section}\n" in card.text, section
    assert card.data.library_name == "transformers"
    assert card.data.license == "other"
    assert card.data.pipeline_tag == {"cell_detector": "object-detection"}.get(model_type, "image-classification")
    assert card.data.base_model is None  # tiny models start from random weights: no ImageNet base to claim
    assert "not a diagnosis" in card.text.lower() and "regulatory approval" in card.text
    assert "from_pretrained(repo_id, trust_remote_code=True, revision=revision)" in card.text
    assert eval_results["software"]["torch"] in card.text
    index = {result.metric_type: result.metric_value for result in card.data.eval_results}
    headline = {
        "colponet": ("accuracy", eval_results["metrics"].get("accuracy")),
        "cell_detector": ("mean_average_precision", eval_results["metrics"].get("map")),
        "prepost_fusion": ("sensitivity", eval_results["metrics"].get("report", {}).get("sensitivity")),
        "cell_classifier": ("accuracy", eval_results["metrics"].get("accuracy")),
    }
    metric_type, value = headline[model_type]
    assert index[metric_type] == pytest.approx(value, abs=5e-5)
    assert f"{value:.3f}" in card.text


def test_colponet_card_shows_report_confusion_matrix_counts_and_the_quality_gate(runs):
    text = (runs["colponet"] / "README.md").read_text()
    metrics = json.loads((runs["colponet"] / "eval_results.json").read_text())["metrics"]
    report = metrics["classification_report"]["Type_2"]
    row = f"| Type_2 | {report['precision']:.3f} | {report['recall']:.3f} | {report['f1-score']:.3f} | 5 |"
    assert row in text
    assert "| Type_1 | " + " | ".join(map(str, metrics["confusion_matrix"][0])) + " |" in text
    assert "| Type_1 | 28 | 8 | 4 |" in text  # photos per class: train, validation, test
    assert re.search(r"Laplacian is at least\s+12 and", text)  # the processor's threshold
    assert "Glare" in text  # what the gate does not catch


def test_detector_card_shows_per_class_average_precision(runs):
    text = (runs["cell_detector"] / "README.md").read_text()
    per_class = json.loads((runs["cell_detector"] / "eval_results.json").read_text())["metrics"]["per_class"]
    cell = per_class["cell"]
    assert f"| cell | {cell['ap']:.3f} | {cell['ap_50']:.3f} | {cell['recall']:.3f} | 1 | 2 |" in text
    assert "custom data (cells)" in text and "state the data's licence" in text  # an unknown dataset is said so


def test_prepost_card_shows_intervals_threshold_table_and_validation_operating_points(runs):
    text = (runs["prepost_fusion"] / "README.md").read_text()
    metrics = json.loads((runs["prepost_fusion"] / "eval_results.json").read_text())["metrics"]
    sensitivity = metrics["intervals"]["sensitivity"]
    low, high = sensitivity["wilson"]
    assert f"| {sensitivity['successes']} / {sensitivity['total']} |" in text and f"{low:.3f} to {high:.3f}" in text
    assert f"| {metrics['threshold']:.3f} ◀ |" in text  # the decision threshold's row
    assert len([line for line in text.splitlines() if line.startswith("| 0.")]) >= 20  # the threshold grid
    screening = metrics["operating_points"]["screening"]
    assert screening["chosen_on"] == "validation"
    assert (
        f"| screening | {screening['threshold']:.3f} | yes | {screening['sensitivity']:.3f} | "
        f"{screening['specificity']:.3f} | {screening['test_sensitivity']:.3f} |"
    ) in text
    assert "Negative is low grade (LSIL/CIN1)" in text


def test_base_model_is_claimed_only_when_training_started_from_imagenet(run_copy):
    model_dir = run_copy("colponet")
    edit_json(model_dir / "config.json", lambda config: config.update(use_pretrained_backbone=True))
    card = render_model_card(model_dir)
    assert card.data.base_model == "microsoft/resnet-50"
    assert "initialised from `microsoft/resnet-50`" in card.text


def test_the_card_names_a_reduced_backbone_by_its_layout(runs):
    config = json.loads((runs["colponet"] / "config.json").read_text())["backbone_config"]
    layout = (
        f"reduced ResNet ({config['layer_type']} blocks, depths {'-'.join(map(str, config['depths']))}, "
        f"widths {'-'.join(map(str, config['hidden_sizes']))}; not the published ResNet-50)"
    )
    assert layout in (runs["colponet"] / "README.md").read_text()


def test_a_number_tampered_in_the_card_is_caught(run_copy):
    model_dir = run_copy("colponet")
    card, values = build_model_card(model_dir)
    text = str(card)
    accuracy = next(value for value in values if value.path == ("metrics", "accuracy"))
    tampered = text[: accuracy.start] + "0.999" + text[accuracy.end :]
    check_model_card(text, values, model_dir)  # the untouched card passes
    with pytest.raises(ModelCardError, match=r"shows '0\.999' for eval_results\.json metrics\.accuracy"):
        check_model_card(tampered, values, model_dir)


def test_an_evaluation_file_changed_after_rendering_is_caught(run_copy):
    model_dir = run_copy("cell_detector")
    card, values = build_model_card(model_dir)
    edit_json(model_dir / "eval_results.json", lambda results: results["data"]["images_per_split"].update(train=60))
    with pytest.raises(ModelCardError, match=r"shows '6' for eval_results\.json data\.images_per_split\.train"):
        check_model_card(str(card), values, model_dir)


@pytest.mark.parametrize(
    "model_type, edit, message",
    [
        ("colponet", lambda r: r["metrics"].update(accuracy=0.9), r"metrics\.accuracy is 0\.9, but the rest"),
        ("colponet", lambda r: r["data"]["class_counts"]["test"].update(Type_3=30), r"class_counts\.test\.Type_3"),
        ("cell_detector", lambda r: r["metrics"].update(map=0.8), r"metrics\.map is 0\.8"),
        ("prepost_fusion", lambda r: r["metrics"]["report"].update(sensitivity=0.99), r"sensitivity"),
    ],
)
def test_a_tampered_evaluation_file_fails_the_render(run_copy, model_type, edit, message):
    model_dir = run_copy(model_type)
    edit_json(model_dir / "eval_results.json", edit)
    with pytest.raises(ModelCardError, match=message):
        render_model_card(model_dir)


def write_template(tmp_path, edit):
    template = tmp_path / "colponet.md.j2"
    template.write_text(edit((TEMPLATES_DIR / "colponet.md.j2").read_text()))
    return template


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda t: t.replace("{{ num(ev.metrics.accuracy) }}", "{{ ev.metrics.accuracy }}"),
            r"prints eval_results\.json metrics\.accuracy .* directly",
        ),
        (
            lambda t: t.replace(
                "| {{ name }} | {{ num(ev.metrics.classification_report[name].precision) }}", "| {{ name }} | 0.97"
            ),
            r"number '0\.97' in a table of section 'Classification report'",
        ),
        (lambda t: re.sub(r"\{\{ out_of_scope\(.*\) \}\}", "", t), r"'Out-of-scope use' is empty"),
        (lambda t: t.replace("## Labels", "## Classes"), r"'Labels' is missing"),
        (lambda t: t.replace("{{ architecture }}", "{{ architecture }} {{ author }}"), r"uses author"),
        (lambda t: t.replace("ev.metrics.log_loss", "ev.metrics.logloss"), r"has no metrics\.logloss"),
    ],
    ids=["raw-number", "invented-table-number", "empty-section", "missing-section", "unknown-name", "missing-key"],
)
def test_template_mistakes_fail_the_render(run_copy, tmp_path, edit, message):
    model_dir = run_copy("colponet")
    with pytest.raises(ModelCardError, match=message):
        render_model_card(model_dir, template_path=write_template(tmp_path, edit))


def test_render_card_command_rerenders_an_existing_checkpoint_and_explains_a_bad_folder(run_copy, tmp_path, capsys):
    model_dir = run_copy("prepost_fusion")
    (model_dir / "README.md").unlink()
    assert render_card.main(["--model-dir", str(model_dir), "--repo-id", "me/prepost", "--revision", "v2"]) == 0
    text = (model_dir / "README.md").read_text()
    assert 'repo_id, revision = "me/prepost", "v2"' in text
    (tmp_path / "weights-only").mkdir()
    shutil.copy(model_dir / "config.json", tmp_path / "weights-only")
    assert render_card.main(["--model-dir", str(tmp_path / "weights-only")]) == 1
    assert "eval_results.json is missing" in capsys.readouterr().err
