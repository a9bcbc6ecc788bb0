"""The training engine end to end: a smoke run on the real sample, --resume, and a non-finite loss."""

import argparse
import json

import pytest
import torch
from huggingface_hub import ModelCard
from torch import nn

from cervix_hf import ColpoNetForImageClassification, ColpoNetImageProcessor
from cervix_hf.prediction.inference import classify_cervix_type
from train import train_colponet
from train.arguments import add_common_args
from train.engine import NonFiniteLossError, TrainingStage, run_stages

SMOKE_ARGS = [
    "--model-size",
    "tiny",
    "--stage1-epochs",
    "1",
    "--stage2-epochs",
    "1",
    "--batch-size",
    "16",
    "--workers",
    "0",
    "--no-progress-bar",
    "--augmentation",
    "flip",
]


@pytest.fixture(scope="module")
def smoke_run(intel_sample, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("colponet-smoke")
    args = train_colponet.get_args_parser().parse_args(
        ["--data", str(intel_sample), "--output-dir", str(output_dir), *SMOKE_ARGS]
    )
    return output_dir, train_colponet.main(args)


@pytest.mark.slow
def test_smoke_run_writes_model_processor_and_consistent_eval_file(smoke_run):
    output_dir, results = smoke_run
    for name in ("config.json", "model.safetensors", "preprocessor_config.json", "eval_results.json"):
        assert (output_dir / name).is_file(), name
    saved = json.loads((output_dir / "eval_results.json").read_text())
    metrics = saved["metrics"]
    counts = saved["data"]["class_counts"]
    # 120 photos, 40 per class, split 70:20:10 before the quality gate
    assert sum(counts["test"].values()) == 12 and sum(counts["validation"].values()) == 24
    assert sum(sum(c.values()) for c in counts.values()) + saved["data"]["quality_gate"]["rejected"] == 120
    report = metrics["classification_report"]
    assert sum(report[name]["support"] for name in saved["label_names"]) == 12
    assert sum(map(sum, metrics["confusion_matrix"])) == 12
    assert 0.0 <= metrics["accuracy"] <= 1.0 and metrics["log_loss"] > 0
    assert [stage["stage"] for stage in saved["training"]["stages"]] == ["stage1_frozen_backbone", "stage2_full"]
    assert results["metrics"]["accuracy"] == metrics["accuracy"]


@pytest.mark.slow
def test_the_run_writes_its_model_card_from_the_real_evaluation(smoke_run):
    output_dir, results = smoke_run
    card = ModelCard.load(output_dir / "README.md")
    metrics = results["metrics"]
    assert f"- **Accuracy:** {metrics['accuracy']:.3f}" in card.text
    assert f"(the competition's metric; lower is better): {metrics['log_loss']:.3f}" in card.text
    index = {result.metric_type: result.metric_value for result in card.data.eval_results}
    assert index["log_loss"] == pytest.approx(metrics["log_loss"], abs=5e-5)
    assert "**Intel & MobileODT Cervical Cancer Screening**" in card.text


@pytest.mark.slow
def test_saved_model_reproduces_the_evaluated_predictions(smoke_run, intel_sample):
    output_dir, results = smoke_run
    model = ColpoNetForImageClassification.from_pretrained(output_dir).eval()
    processor = ColpoNetImageProcessor.from_pretrained(output_dir)
    for row in results["predictions"][:4]:  # named inside the data set, which lies in intel_sample.parent
        photo = intel_sample.parent / row["path"]
        prediction = classify_cervix_type(model, processor, photo, ignore_quality_gate=True)
        for name, probability in row["probabilities"].items():
            assert prediction.probabilities[name] == pytest.approx(probability, abs=1e-5)


@pytest.mark.slow
def test_resume_skips_finished_stages(smoke_run, intel_sample):
    output_dir, results = smoke_run
    args = train_colponet.get_args_parser().parse_args(
        ["--data", str(intel_sample), "--output-dir", str(output_dir), "--resume", *SMOKE_ARGS]
    )
    resumed = train_colponet.main(args)
    # Both stages were finished, so nothing is trained again and the same weights give the same evaluation.
    assert resumed["metrics"]["log_loss"] == pytest.approx(results["metrics"]["log_loss"], rel=1e-6)
    assert [s["global_step"] for s in resumed["training"]["stages"]] == [
        s["global_step"] for s in results["training"]["stages"]
    ]


class _ExplodingModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Linear(2, 2)
        self.head = nn.Linear(2, 1)

    def set_backbone_trainable(self, trainable):
        self.backbone.requires_grad_(trainable)

    def forward(self, x, labels=None):
        out = self.head(self.backbone(x)).squeeze(-1)
        return {"loss": out.sum() * float("nan"), "logits": out}


def test_non_finite_loss_stops_training_with_a_clear_error(tmp_path):
    args = add_common_args(argparse.ArgumentParser()).parse_args(
        ["--output-dir", str(tmp_path), "--batch-size", "2", "--workers", "0", "--no-progress-bar"]
    )
    data = [{"x": torch.randn(2), "labels": torch.tensor(0.0)} for _ in range(4)]
    with pytest.raises(NonFiniteLossError, match="Non-finite training loss"):
        run_stages(
            _ExplodingModel(),
            [TrainingStage("only", 1e-3, 1, train_backbone=True)],
            args,
            data,
            data,
            compute_metrics=None,
            metric_for_best_model="loss",
            greater_is_better=False,
        )


@pytest.mark.slow
def test_the_kaggle_recipe_command_trains_on_a_validation_split_beside_its_baselines(intel_sample, tmp_path):
    """The README's recipe command, as a user runs it, shrunk (64 px, one epoch) to run in seconds."""
    import subprocess
    import sys

    import numpy as np

    output_dir = tmp_path / "colponet"
    command = [
        sys.executable,
        "-m",
        "cervix_hf",
        "train",
        "colponet",
        "--data",
        str(intel_sample),
        "--recipe",
        "kaggle",
        "--output-dir",
        str(output_dir),
        "--image-size",
        "64",
        "--stage2-epochs",
        "1",
        "--workers",
        "0",
        "--no-progress-bar",
    ]
    subprocess.run(command, check=True, capture_output=True, text=True, timeout=600)
    saved = json.loads((output_dir / "eval_results.json").read_text())
    # 40 photos per class, 80:20: 8 of each class in the validation split, no test split
    assert saved["evaluated_on"] == "validation"
    assert saved["data"]["class_counts"]["validation"] == {"Type_1": 8, "Type_2": 8, "Type_3": 8}
    assert sum(saved["data"]["class_counts"]["test"].values()) == 0
    # the recipe's settings, and a flag given (the size) winning over the recipe's
    assert saved["training"]["label_smoothing"] == 0.1 and saved["training"]["schedule"] == "cosine"
    assert saved["training"]["model_size"] == "small" and saved["training"]["image_size"] == 64
    assert saved["training"]["initialisation"] == "random weights (no ImageNet)"
    # the gate's thresholds are the 2nd percentiles of the training photos' scores, saved with the processor
    processor = ColpoNetImageProcessor.from_pretrained(output_dir)
    calibrated = saved["data"]["quality_gate"]["calibrated"]
    assert processor.quality_laplacian_threshold == pytest.approx(calibrated["quality_laplacian_threshold"])
    assert processor.size == {"height": 64, "width": 64}
    # the interval's point estimates are the evaluation's own, recomputed from the saved predictions
    names = saved["label_names"]
    labels = np.array([names.index(p["label"]) for p in saved["predictions"]])
    probabilities = np.array([[p["probabilities"][n] for n in names] for p in saved["predictions"]])
    accuracy = float((probabilities.argmax(1) == labels).mean())
    log_loss = float(-np.log(np.clip(probabilities[np.arange(len(labels)), labels], 1e-15, 1)).mean())
    assert saved["intervals"]["accuracy"] == pytest.approx(accuracy) == pytest.approx(saved["metrics"]["accuracy"])
    assert saved["intervals"]["log_loss"] == pytest.approx(log_loss, abs=1e-6)
    low, high = saved["intervals"]["accuracy_ci"]
    assert low <= accuracy <= high
    # the class prior of the training split: 32 of each class before the gate, so every class gets 1/3
    prior = saved["baselines"]["class_prior"]
    assert prior["log_loss"] == pytest.approx(np.log(3), abs=1e-9)
    assert prior["model_minus_baseline"]["log_loss"] == pytest.approx(log_loss - np.log(3), abs=1e-6)
    assert "colour_texture_logistic_regression" in saved["baselines"]
    card = ModelCard.load(output_dir / "README.md").text
    assert "random weights (no ImageNet)" in card
    assert "python -m cervix_hf train colponet" not in card and "--recipe kaggle" in card
    assert f"| this model | {accuracy:.3f} [{low:.3f}, {high:.3f}]" in card

    # the README's benchmark over this model: the same photos, the same model row, each baseline beside it
    benchmark = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.colponet_accuracy",
            "--model",
            str(output_dir),
            "--data",
            str(intel_sample),
            "--resamples",
            "200",
            "--output",
            str(tmp_path / "benchmark.json"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert benchmark.returncode == 0, benchmark.stderr[-3000:]
    report = json.loads((tmp_path / "benchmark.json").read_text())
    assert report["validation_photos"] == 24
    assert report["model"]["accuracy"] == pytest.approx(accuracy, abs=1e-6)
    assert report["baselines"]["class prior"]["log_loss"] == pytest.approx(np.log(3), abs=1e-9)
    assert f"model (kaggle recipe)                    {accuracy:.3f}" in benchmark.stdout


@pytest.mark.slow
@pytest.mark.parametrize("targets", ["hard", "soft"])
def test_self_training_adds_the_photos_a_teacher_trained_first_labels(intel_sample, tmp_path, targets):
    """`--unlabeled` without `--teacher`, as a user runs it: a teacher is trained first on the labelled photos alone,
    labels the unlabelled ones, and those it keeps join the training split only, with the teacher's class or, with
    `--soft-pseudo-labels`, its class probabilities."""
    import shutil
    import subprocess
    import sys

    unlabeled = tmp_path / "unlabeled"
    unlabeled.mkdir()
    photos = sorted((intel_sample / "train" / "Type_2").glob("*.jpg"))[:3]
    photos += sorted((intel_sample / "train" / "Type_3").glob("*.jpg"))[:3]
    for number, photo in enumerate(photos):  # flat, unlabelled, as the competition's unlabelled folder
        shutil.copy(photo, unlabeled / f"{number}.jpg")
    output_dir = tmp_path / "student"
    common = ["--model-size", "tiny", "--image-size", "64", "--stage1-epochs", "0", "--stage2-epochs", "1"]
    common += ["--schedule", "cosine", "--split", "0.8", "0.2", "0", "--workers", "0", "--no-progress-bar"]
    command = [sys.executable, "-m", "cervix_hf", "train", "colponet", "--data", str(intel_sample), *common]
    command += ["--output-dir", str(output_dir), "--unlabeled", str(unlabeled), "--pseudo-label-threshold", "0"]
    command += ["--soft-pseudo-labels"] if targets == "soft" else []
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]

    teacher = json.loads((output_dir / "teacher" / "eval_results.json").read_text())
    student = json.loads((output_dir / "eval_results.json").read_text())
    assert teacher["data"]["pseudo_labels"] is None  # the teacher saw the labelled photos only
    pseudo = student["data"]["pseudo_labels"]
    assert pseudo["unlabeled"] == 6 and pseudo["kept"] == 6  # threshold 0 keeps every photo
    assert pseudo["targets"] == targets
    assert sum(pseudo["per_class"].values()) == 6
    # the student trained on the teacher's photos plus the kept ones, per class; it is evaluated on the same photos
    for name, count in teacher["data"]["class_counts"]["train"].items():
        assert student["data"]["class_counts"]["train"][name] == count + pseudo["per_class"][name]
    assert student["data"]["class_counts"]["validation"] == teacher["data"]["class_counts"]["validation"]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--teacher", "."], "--teacher labels the photos of --unlabeled"),
        (["--soft-pseudo-labels"], "--soft-pseudo-labels are the teacher's for the photos of --unlabeled"),
        (["--ema-decay", "1"], "--ema-decay must be in \\[0, 1\\), got 1.0"),
    ],
)
def test_self_training_and_weight_average_flags_without_their_inputs_are_refused(
    intel_sample, tmp_path, flags, message
):
    args = train_colponet.get_args_parser().parse_args(
        ["--data", str(intel_sample), "--output-dir", str(tmp_path), *flags, *SMOKE_ARGS]
    )
    with pytest.raises(SystemExit, match=message):
        train_colponet.main(args)


def test_mixup_trains_on_blends_of_photos_and_of_their_labels(tmp_path):
    """Mixup (Zhang et al., 2018): the loss of `lam * x + (1 - lam) * x[perm]` against `lam * y + (1 - lam) *
    y[perm]`, lam drawn from Beta(alpha, alpha); evaluation sees the photos as they are."""
    from transformers import TrainingArguments

    from cervix_hf.registry import colponet_config
    from train.engine import MixupTrainer

    torch.manual_seed(0)
    model = ColpoNetForImageClassification(colponet_config("tiny"))
    arguments = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to=[])
    trainer = MixupTrainer(model=model, args=arguments, mixup_alpha=0.4)
    pixels, labels = torch.randn(4, 3, 64, 64), torch.tensor([0, 1, 2, 1])

    model.train()  # batch statistics and dropout: the same random draws on both sides, from the same seed
    torch.manual_seed(2)
    lam = float(torch.distributions.Beta(0.4, 0.4).sample())
    order = torch.randperm(4)
    logits = model(pixel_values=lam * pixels + (1 - lam) * pixels[order]).logits
    one_hot = nn.functional.one_hot(labels, 3).float()
    targets = lam * one_hot + (1 - lam) * one_hot[order]
    expected = -(targets * logits.log_softmax(-1)).sum(-1).mean()
    torch.manual_seed(2)
    loss = trainer.compute_loss(model, {"pixel_values": pixels, "labels": labels})
    assert 0.2 < lam < 0.8 and (labels[order] != labels).any()  # a real blend of different photos and labels
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)

    model.eval()  # evaluation: the plain cross-entropy of the photos as they are
    plain = nn.functional.cross_entropy(model(pixel_values=pixels).logits, labels)
    assert trainer.compute_loss(model, {"pixel_values": pixels, "labels": labels}).item() == pytest.approx(
        plain.item(), rel=1e-5
    )


def test_probability_labels_train_against_the_probabilities_with_the_run_s_label_smoothing(tmp_path):
    """Soft pseudo-labels: a batch whose labels are class probabilities is trained on the cross-entropy against
    them, smoothed like hard labels are: `(1 - eps) * p + eps / K`."""
    from transformers import TrainingArguments

    from cervix_hf.registry import colponet_config
    from train.engine import MixupTrainer

    torch.manual_seed(0)
    model = ColpoNetForImageClassification(colponet_config("tiny"))
    arguments = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to=[], label_smoothing_factor=0.1)
    trainer = MixupTrainer(model=model, args=arguments)
    pixels = torch.randn(3, 3, 64, 64)
    probabilities = torch.tensor([[0.7, 0.2, 0.1], [0.0, 1.0, 0.0], [0.3, 0.3, 0.4]])

    model.train()  # batch statistics and dropout: the same random draws on both sides, from the same seed
    torch.manual_seed(2)
    log_probabilities = model(pixel_values=pixels).logits.float().log_softmax(-1)
    targets = 0.9 * probabilities + 0.1 / 3
    expected = -(targets * log_probabilities).sum(-1).mean()
    torch.manual_seed(2)
    loss = trainer.compute_loss(model, {"pixel_values": pixels, "labels": probabilities})
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_soft_labels_make_a_dataset_item_s_labels_the_probabilities(intel_sample):
    from cervix_hf.data import DecodedImageDataset

    paths = sorted(str(path) for path in (intel_sample / "train" / "Type_1").glob("*.jpg"))[:2]
    processor = ColpoNetImageProcessor(size={"height": 32, "width": 32})
    soft = [[0.2, 0.5, 0.3], [1.0, 0.0, 0.0]]
    dataset = DecodedImageDataset(paths, [1, 0], processor, soft_labels=soft)
    assert torch.equal(dataset[0]["labels"], torch.tensor(soft[0])) and dataset[1]["labels"].dtype == torch.float32
    assert DecodedImageDataset(paths, [1, 0], processor)[0]["labels"] == 1
    with pytest.raises(ValueError, match="one vector per path, got 1 for 2"):
        DecodedImageDataset(paths, [1, 0], processor, soft_labels=soft[:1])


def _augmented_batches(dataset, workers: int, epochs: int = 2) -> list[torch.Tensor]:
    from torch.utils.data import DataLoader

    batches = []
    for epoch in range(epochs):
        dataset.set_epoch(epoch)
        loader = DataLoader(dataset, batch_size=3, num_workers=workers)
        batches.append(torch.cat([batch["pixel_values"] for batch in loader]))
    return batches


@pytest.mark.parametrize("decode_once", [True, False])
def test_a_seeded_dataset_draws_the_same_augmentations_whatever_the_workers(intel_sample, decode_once):
    from cervix_hf.data import DecodedImageDataset, ImageClassificationDataset
    from train.presets import classification_train_transform

    paths = sorted(str(path) for path in (intel_sample / "train" / "Type_2").glob("*.jpg"))[:6]
    processor = ColpoNetImageProcessor(size={"height": 48, "width": 48})
    transform = classification_train_transform("default", size=48)
    dataset_class = DecodedImageDataset if decode_once else ImageClassificationDataset
    seeded = dataset_class(paths, [1] * 6, processor, transform, seed=7)
    torch.manual_seed(0)
    in_process = _augmented_batches(seeded, workers=0)
    torch.manual_seed(1)  # the caller's generator has no say either
    in_workers = _augmented_batches(seeded, workers=2)
    for epoch in range(2):
        torch.testing.assert_close(in_workers[epoch], in_process[epoch], rtol=0, atol=0)
    assert not torch.equal(in_process[0], in_process[1])  # a new draw every epoch
    other_seed = _augmented_batches(dataset_class(paths, [1] * 6, processor, transform, seed=8), workers=0)
    assert not torch.equal(other_seed[0], in_process[0])

    unseeded = dataset_class(paths, [1] * 6, processor, transform)  # each worker's own generator
    torch.manual_seed(0)
    assert not torch.equal(_augmented_batches(unseeded, workers=0)[0], _augmented_batches(unseeded, workers=2)[0])


@pytest.mark.slow
def test_the_same_command_trains_the_same_model_whatever_the_workers(intel_sample, tmp_path):
    """`--workers` is how fast photos are read, not what the model learns: the weights come out the same."""
    from safetensors.torch import load_file

    weights = {}
    for workers in ("0", "2"):
        argv = ["--data", str(intel_sample), "--output-dir", str(tmp_path / workers), *SMOKE_ARGS]
        argv += ["--augmentation", "default", "--workers", workers, "--stage1-epochs", "0", "--stage2-epochs", "2"]
        train_colponet.main(train_colponet.get_args_parser().parse_args(argv))
        weights[workers] = load_file(tmp_path / workers / "model.safetensors")
    assert weights["0"].keys() == weights["2"].keys()
    for name, value in weights["0"].items():
        torch.testing.assert_close(weights["2"][name], value, rtol=0, atol=0, msg=name)


def test_the_engine_reads_a_typed_run_configuration_of_the_script_s_arguments(tmp_path):
    from train.arguments import RunConfig
    from train.engine import published_path

    data, output = tmp_path / "photos", tmp_path / "run"
    args = train_colponet.get_args_parser().parse_args(
        ["--data", str(data), "--output-dir", str(output), "--batch-size", "8", "--augmentation", "flip"]
    )
    config = RunConfig.from_args(args)
    assert (config.output_dir, config.data, config.batch_size, config.seed) == (output, data, 8, 42)
    assert config.get("augmentation") == "flip" and config.arguments == vars(args)
    assert published_path(data / "train" / "Type_1" / "1.jpg", config) == "photos/train/Type_1/1.jpg"
    assert published_path(output / "checkpoint-3", config) == "checkpoint-3"
    assert RunConfig.from_args(config) is config
