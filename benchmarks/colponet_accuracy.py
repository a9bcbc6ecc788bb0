"""ColpoNet's kaggle recipe against non-learned and seed baselines, on one validation split, in one run.

    python -m benchmarks.colponet_accuracy --model runs/colponet-kaggle [--seed64-model DIR | --train-seed64]

Every figure is on the validation split the model recorded (`eval_results.json`: the data set, split fractions and
seed, re-drawn here by the same rule and checked photo by photo against the model's recorded predictions):

- the class prior: the training split's class frequencies as every photo's probabilities (its accuracy is the
  majority class's share);
- classical colour and texture features (colour moments and hue/saturation histograms, gradient-magnitude and
  local-binary-pattern histograms, Laplacian variance) with a logistic regression fitted on the training split (its
  regularisation chosen by 5-fold cross-validation on the training split alone);
- the seed work's ColpoNet at 64x64 px (`--recipe seed64`), trained by `train.train_colponet` on the same split
  (`--train-seed64`), or a saved one (`--seed64-model`);
- the model, as `cervix-hf predict` runs it, with and without test-time horizontal flips (an ablation row: the
  published model does not flip).

Each metric has a 95% percentile-bootstrap interval over photos, and each baseline a paired bootstrap interval of
its difference from the model (the same resampled photos for both): the model beats a baseline when that interval
excludes 0. The quality gate is measured on every labelled photo: the share it rejects at the processor's default
thresholds and at the model's calibrated ones, and the model's accuracy and log loss on the validation photos it
accepts and rejects.

Targets (validation split): log loss at most 0.85 and accuracy at least 0.65.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from cervix_hf.cli import DefaultsHelpFormatter
from cervix_hf.data import read_intel_mobileodt, stratified_split
from cervix_hf.io.images import load_image
from cervix_hf.models.colponet.image_quality import (
    DEFAULT_FFT_THRESHOLD,
    DEFAULT_LAPLACIAN_THRESHOLD,
    assess_image_quality,
)
from cervix_hf.sample_data import sample_data_dir
from train.colponet_baselines import class_prior, classical_baseline, compare, figures

TARGET_LOG_LOSS, TARGET_ACCURACY = 0.85, 0.65


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=DefaultsHelpFormatter)
    parser.add_argument("--model", required=True, type=Path, help="a ColpoNet trained with --recipe kaggle")
    parser.add_argument(
        "--data", type=Path, help="the competition folder (default: the sample data's intel-mobileodt-512)"
    )
    seed64 = parser.add_mutually_exclusive_group()
    seed64.add_argument("--seed64-model", type=Path, help="a ColpoNet trained with --recipe seed64 on the same split")
    seed64.add_argument("--train-seed64", action="store_true", help="train the seed64 baseline here first")
    parser.add_argument("--resamples", default=2000, type=int, help="bootstrap resamples")
    parser.add_argument("--output", type=Path, help="also write the figures as JSON")
    return parser


# --- the split ------------------------------------------------------------------------------------------------


def recorded_split(model_dir: Path, data: Path):
    """The records and the train/validation indices the model was trained and evaluated on, checked against the
    photos its evaluation file names."""
    results = json.loads((model_dir / "eval_results.json").read_text())
    fractions = [results["data"]["split_fractions"][name] for name in ("train", "validation", "test")]
    records = read_intel_mobileodt(data, subsets=("train",))
    splits = stratified_split(records.labels, fractions=fractions, seed=results["data"]["seed"])
    evaluated = results["evaluated_on"]
    recorded = [Path(p["path"]).name for p in results["predictions"]]
    drawn = [Path(records.paths[i]).name for i in splits[evaluated]]
    if recorded != drawn:
        raise SystemExit(
            f"--model {model_dir} was evaluated on other photos than the {evaluated} split drawn here from --data "
            f"{data} (first difference: {next((a, b) for a, b in zip(recorded, drawn) if a != b)})."
        )
    return records, splits["train"], splits[evaluated]


def train_seed64(data: Path, seed: int, fractions: dict, work: Path) -> Path:
    output = work / "colponet-seed64"
    command = [
        sys.executable,
        "-m",
        "train.train_colponet",
        "--data",
        str(data),
        "--recipe",
        "seed64",
        "--seed",
        str(seed),
        "--split",
        *(str(fractions[n]) for n in ("train", "validation", "test")),
        "--output-dir",
        str(output),
        "--no-progress-bar",
        "--workers",
        "1",
    ]
    print("Training the seed64 baseline:", " ".join(command), flush=True)
    subprocess.run(command, check=True)
    return output


# --- the model ------------------------------------------------------------------------------------------------


def model_probabilities(model_dir: Path, paths: list[str], flips: bool) -> np.ndarray:
    """The model's probabilities for `paths` as prediction runs it (processor, model, softmax); with `flips`, the
    mean of the softmax of the photo and of its mirror image."""
    import torch

    from cervix_hf.prediction.inference import load_classifier

    model, processor = load_classifier(str(model_dir))
    out = []
    with torch.inference_mode():
        for start in range(0, len(paths), 32):
            images = [load_image(p) for p in paths[start : start + 32]]
            pixels = processor(images=images, return_tensors="pt")["pixel_values"]
            probabilities = model(pixel_values=pixels).logits.softmax(-1)
            if flips:
                probabilities = (probabilities + model(pixel_values=pixels.flip(-1)).logits.softmax(-1)) / 2
            out.append(probabilities.double().numpy())
    return np.concatenate(out)


def gate_on_every_photo(records, model_dir: Path) -> dict:
    from transformers import AutoImageProcessor

    processor = AutoImageProcessor.from_pretrained(model_dir, trust_remote_code=True)
    reports = [assess_image_quality(load_image(p)) for p in records.paths]
    laplacian = np.array([r.laplacian_variance for r in reports])
    fft = np.array([r.fft_score for r in reports])

    def rejected(lap_threshold, fft_threshold):
        share = float(((laplacian < lap_threshold) | (fft < fft_threshold)).mean())
        return {"laplacian_threshold": lap_threshold, "fft_threshold": fft_threshold, "rejected_share": share}

    return {
        "photos": len(records),
        "default": rejected(DEFAULT_LAPLACIAN_THRESHOLD, DEFAULT_FFT_THRESHOLD),
        "calibrated": rejected(processor.quality_laplacian_threshold, processor.quality_fft_threshold),
        "laplacian_percentiles_1_5_50": np.percentile(laplacian, [1, 5, 50]).round(2).tolist(),
        "fft_percentiles_1_5_50": np.percentile(fft, [1, 5, 50]).round(2).tolist(),
    }


# --- the run --------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    data = args.data or sample_data_dir() / "intel-mobileodt-512"
    if not (data / "train").is_dir():
        raise SystemExit(f"--data {data}: no competition train/ folder.")
    records, train, evaluated = recorded_split(args.model, data)
    names = list(records.label_names)
    labels = np.asarray(records.labels)
    truth = labels[evaluated]
    eval_paths = [records.paths[i] for i in evaluated]
    results = json.loads((args.model / "eval_results.json").read_text())

    baselines = {"class prior": class_prior(labels[train], len(names), len(evaluated))}
    started = time.perf_counter()
    baselines["colour + texture, logistic regression"] = classical_baseline(
        [records.paths[i] for i in train], labels[train], eval_paths
    )
    print(f"classical baseline: {time.perf_counter() - started:.0f} s", flush=True)
    seed64 = args.seed64_model
    if args.train_seed64:
        seed64 = train_seed64(
            data,
            results["data"]["seed"],
            results["data"]["split_fractions"],
            Path(tempfile.mkdtemp(prefix="colponet-seed64-")),
        )
    if seed64 is not None:
        recorded_split(seed64, data)  # the same photos, or it stops
        baselines["seed ColpoNet at 64 px (seed64)"] = model_probabilities(seed64, eval_paths, flips=False)
    model = model_probabilities(args.model, eval_paths, flips=False)
    baselines["model + test-time flips (ablation)"] = model_probabilities(args.model, eval_paths, flips=True)

    report = {
        "validation_photos": len(evaluated),
        "model": figures(model, truth, names, args.resamples),
        "baselines": {n: compare(model, p, truth, names, args.resamples) for n, p in baselines.items()},
    }
    counts = dict(zip(names, np.bincount(truth, minlength=len(names)).tolist()))
    print(
        f"\nValidation split of {data.name}: {len(evaluated)} photos {counts}; 95% bootstrap intervals "
        f"({args.resamples} resamples); the last columns are the model's difference from each row (paired)\n"
    )
    print(f"{'':40} {'accuracy':>21} {'log loss':>21}   {'model - row: accuracy':>26} {'log loss':>24}")
    for name, row in [("model (kaggle recipe)", report["model"]), *report["baselines"].items()]:
        line = f"{name:40} {_with_ci(row, 'accuracy')} {_with_ci(row, 'log_loss')}"
        if "model_minus_baseline" in row:
            d = row["model_minus_baseline"]
            line += f"   {_with_ci(d, 'accuracy', signed=True)} {_with_ci(d, 'log_loss', signed=True)}"
        print(line)
    print(
        "\nModel recall per type:",
        ", ".join(
            f"{n} {r['recall']:.3f} [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}] (n={r['n']})"
            for n, r in report["model"]["recall"].items()
        ),
    )
    print(
        "Beaten by more than the paired interval (accuracy and log loss):",
        ", ".join(
            f"{n}: {'yes' if r['beaten'] else 'NO'}"
            for n, r in report["baselines"].items()
            if not n.startswith("model")
        ),
    )
    model_row = report["model"]
    print(
        f"Targets: log loss <= {TARGET_LOG_LOSS}: {'met' if model_row['log_loss'] <= TARGET_LOG_LOSS else 'NOT met'}; "
        f"accuracy >= {TARGET_ACCURACY}: {'met' if model_row['accuracy'] >= TARGET_ACCURACY else 'NOT met'}"
    )

    gate = gate_on_every_photo(records, args.model)
    gate["effect_on_validation"] = results["data"]["quality_gate"].get("effect_on_validation")
    report["quality_gate"] = gate
    print(
        f"\nQuality gate on all {gate['photos']} labelled photos: rejects "
        f"{gate['default']['rejected_share']:.1%} at the default thresholds (Laplacian {DEFAULT_LAPLACIAN_THRESHOLD}, "
        f"FFT {DEFAULT_FFT_THRESHOLD}), {gate['calibrated']['rejected_share']:.1%} at the model's calibrated ones "
        f"(Laplacian {gate['calibrated']['laplacian_threshold']:.2f}, FFT {gate['calibrated']['fft_threshold']:.2f})."
    )
    for side, figures_ in (gate["effect_on_validation"] or {}).items():
        if figures_["n"]:
            print(
                f"  validation photos {side}: {figures_['n']}, accuracy {figures_['accuracy']:.3f}, "
                f"log loss {figures_['log_loss']:.3f}"
            )
    if args.output:
        args.output.write_text(json.dumps(report, indent=2))
    return 0


def _with_ci(row: dict, key: str, signed: bool = False) -> str:
    style = "+.3f" if signed else ".3f"
    low, high = row[key + "_ci"]
    return f"{row[key]:{style}} [{low:{style}}, {high:{style}}]"


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
