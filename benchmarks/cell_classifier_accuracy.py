"""The cell classifier against the class prior and a classical baseline on the Herlev cells, measured in one run.

    python -m benchmarks.cell_classifier_accuracy [--recipe herlev] [--model DIR] [--output-dir DIR]

Trains the cell classifier with the named recipe through `train.train_cell_classifier` (or takes an already
trained `--model`, which must have been trained with the same `--seed`, hence the same split), then scores three
answers on the same split by source image (`cervix_hf.data.source_image_split`):

- **class prior**: the training split's class frequencies for every cell (7 classes: the most frequent class; the
  abnormal probability is a constant, so every threshold calls all cells the same);
- **classical**: colour, size and shape statistics of the cell and of its dark nucleus, segmented with OpenCV (Otsu
  on the grey image for the cell, Otsu again inside the cell for the nucleus), then a multinomial logistic
  regression (scikit-learn, standardised features) trained on the training split;
- **model**: the recipe's model (weight average, four test-time flips).

Each gets the same treatment: its 7-class probabilities, the abnormal probability (the sum of the abnormal classes'),
the screening threshold chosen on the validation split (the highest with abnormal sensitivity >= 0.95), and on the
validation and test splits the 7-class accuracy and, at that threshold, the normal/abnormal accuracy, sensitivity and
specificity with 95% Wilson intervals, and the ROC-AUC. The model beats a baseline on a measure when its interval's
low end is above the baseline's estimate and the baseline's interval's high end is below the model's estimate.

Targets (validation split): normal/abnormal accuracy >= 0.92 with abnormal sensitivity >= 0.95 at the screening
point, 7-class accuracy >= 0.65, the whole recipe trained within about 15 minutes on 2 CPU cores.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from cervix_hf.cli import DefaultsHelpFormatter
from cervix_hf.data import read_herlev, source_image_split
from cervix_hf.evaluation.metrics import select_operating_points, wilson_interval
from cervix_hf.evaluation.metrics.cell_classification import group_probability
from cervix_hf.io.images import load_image
from cervix_hf.models.cell_classifier import HERLEV_GROUPS, HERLEV_POSITIVE_GROUP
from cervix_hf.sample_data import sample_data_dir

TARGET_BINARY_ACCURACY, TARGET_SENSITIVITY, TARGET_ACCURACY, TARGET_TRAIN_MINUTES = 0.92, 0.95, 0.65, 15
MEASURES = ("accuracy_7", "binary_accuracy", "sensitivity", "specificity")


def region_statistics(image: np.ndarray, grey: np.ndarray, mask: np.ndarray) -> list[float]:
    """Area, perimeter, circularity, elongation (from the moments), mean and spread of R, G, B and grey, of the
    largest outline of `mask`."""
    mask = mask.astype(np.uint8)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours or mask.sum() == 0:
        return [0.0] * 12
    contour = max(contours, key=cv2.contourArea)
    area = float(mask.sum())
    perimeter = float(cv2.arcLength(contour, True)) or 1.0
    moments = cv2.moments(mask, binaryImage=True)
    mu20, mu02, mu11 = moments["mu20"], moments["mu02"], moments["mu11"]
    spread = np.sqrt(4 * mu11**2 + (mu20 - mu02) ** 2)
    major, minor = mu20 + mu02 + spread, max(mu20 + mu02 - spread, 1e-9)
    pixels = image[mask > 0].astype(np.float64)
    grey_pixels = grey[mask > 0].astype(np.float64)
    return [
        area,
        perimeter,
        4 * np.pi * area / perimeter**2,
        float(np.sqrt(major / minor)),
        *pixels.mean(axis=0),
        *pixels.std(axis=0)[:1],
        grey_pixels.mean(),
        grey_pixels.std(),
        grey_pixels.min(),
        grey_pixels.max(),
    ]


def classical_features(path: str) -> np.ndarray:
    """The cell (darker than the background, Otsu) and its nucleus (the darker part of the cell, Otsu again), each
    the connected region nearest the image centre; their statistics, the nucleus-to-cell area ratio and the nucleus's
    brightness relative to the cytoplasm's."""
    image = np.asarray(load_image(path))
    height, width = image.shape[:2]
    grey = cv2.GaussianBlur(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), (5, 5), 0)
    _, cell = cv2.threshold(grey, 0, 1, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    cell = central_region(cv2.morphologyEx(cell, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)), height, width)
    inside = grey[cell > 0]
    if inside.size < 10:
        nucleus = cell
    else:
        level, _ = cv2.threshold(inside.reshape(-1, 1), 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        nucleus = central_region(((grey <= level) & (cell > 0)).astype(np.uint8), height, width)
    cell_stats = region_statistics(image, grey, cell)
    nucleus_stats = region_statistics(image, grey, nucleus)
    cytoplasm = (cell > 0) & (nucleus == 0)
    cytoplasm_grey = grey[cytoplasm].mean() if cytoplasm.any() else grey[cell > 0].mean() if cell.any() else 0.0
    ratio = nucleus_stats[0] / max(cell_stats[0], 1.0)
    return np.array([*cell_stats, *nucleus_stats, ratio, nucleus_stats[8] / max(cytoplasm_grey, 1.0)])


def central_region(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """The connected region of `mask` whose centroid is nearest the image centre, weighted towards large regions."""
    count, labels, stats, centroids = cv2.connectedComponentsWithStats(mask.astype(np.uint8))
    if count <= 1:
        return mask.astype(np.uint8)
    centre = np.array([width / 2, height / 2])
    scores = [np.linalg.norm(centroids[i] - centre) / np.sqrt(stats[i, cv2.CC_STAT_AREA]) for i in range(1, count)]
    return (labels == 1 + int(np.argmin(scores))).astype(np.uint8)


def measures(labels, probabilities, names, threshold: float) -> dict:
    """7-class accuracy; at `threshold` on the abnormal probability, the normal/abnormal accuracy, sensitivity and
    specificity, each with its 95% Wilson interval; and the ROC-AUC of the abnormal probability."""
    labels = np.asarray(labels)
    abnormal = np.isin(labels, [names.index(name) for name in HERLEV_GROUPS[HERLEV_POSITIVE_GROUP]])
    scores = group_probability(probabilities, names, HERLEV_GROUPS[HERLEV_POSITIVE_GROUP])
    called = scores >= threshold * (1 - 1e-9)
    counts = {
        "accuracy_7": (int((probabilities.argmax(axis=1) == labels).sum()), len(labels)),
        "binary_accuracy": (int((called == abnormal).sum()), len(labels)),
        "sensitivity": (int((called & abnormal).sum()), int(abnormal.sum())),
        "specificity": (int((~called & ~abnormal).sum()), int((~abnormal).sum())),
    }
    result = {
        name: {"estimate": hits / total, "wilson": wilson_interval(hits, total), "successes": hits, "total": total}
        for name, (hits, total) in counts.items()
    }
    result["roc_auc"] = float(roc_auc_score(abnormal, scores)) if 0 < abnormal.sum() < len(labels) else None
    result["threshold"] = threshold
    return result


def screening_threshold(labels, probabilities, names) -> float:
    abnormal = np.isin(labels, [names.index(name) for name in HERLEV_GROUPS[HERLEV_POSITIVE_GROUP]]).astype(int)
    scores = group_probability(probabilities, names, HERLEV_GROUPS[HERLEV_POSITIVE_GROUP])
    return select_operating_points(abnormal, scores, target_sensitivity=TARGET_SENSITIVITY)["screening"]["threshold"]


def train_model(args: argparse.Namespace, output_dir: Path) -> float:
    from train import train_cell_classifier

    argv = [
        "--data",
        str(args.data),
        "--output-dir",
        str(output_dir),
        "--recipe",
        args.recipe,
        "--seed",
        str(args.seed),
        "--no-progress-bar",
    ]
    if args.threads:
        argv += ["--threads", str(args.threads)]
    started = time.monotonic()
    train_cell_classifier.main(train_cell_classifier.get_args_parser().parse_args(argv))
    return time.monotonic() - started


def model_probabilities(model_dir: Path) -> dict[str, np.ndarray]:
    """The model's validation and test probabilities, as its training run wrote them (same split, same seed)."""
    eval_results = json.loads((model_dir / "eval_results.json").read_text())
    names = eval_results["label_names"]
    return {
        split: np.array([[p["probabilities"][name] for name in names] for p in eval_results[key]])
        for split, key in (("validation", "validation_predictions"), ("test", "predictions"))
    }


def beats(model: dict, baseline: dict) -> bool:
    return model["wilson"][0] > baseline["estimate"] and baseline["wilson"][1] < model["estimate"]


def main(args: argparse.Namespace) -> dict:
    records = read_herlev(args.data)
    names = list(records.label_names)
    splits = {name: records.select(indices) for name, indices in source_image_split(records, seed=args.seed).items()}
    labels = {name: np.asarray(split.labels) for name, split in splits.items()}

    prior = np.bincount(labels["train"], minlength=len(names)) / len(labels["train"])
    evaluated = ("validation", "test")
    probabilities = {"class prior": {split: np.tile(prior, (len(labels[split]), 1)) for split in evaluated}}

    started = time.monotonic()
    features = {name: np.stack([classical_features(path) for path in split.paths]) for name, split in splits.items()}
    regression = make_pipeline(StandardScaler(), LogisticRegression(C=args.classical_c, max_iter=5000))
    regression.fit(features["train"], labels["train"])
    probabilities["classical"] = {split: regression.predict_proba(features[split]) for split in evaluated}
    classical_seconds = time.monotonic() - started

    train_seconds = None
    model_dir = args.model
    if model_dir is None:
        model_dir = args.output_dir or Path(tempfile.mkdtemp(prefix="cell-classifier-"))
        train_seconds = train_model(args, model_dir)
    else:
        trained = json.loads((model_dir / "eval_results.json").read_text())["data"]
        if trained.get("seed") != args.seed or trained.get("split_by") != "source_image":
            raise SystemExit(
                f"--model {model_dir} was trained with another split (seed {trained.get('seed')}); "
                f"pass --seed {trained.get('seed')} or train again."
            )
    probabilities["model"] = model_probabilities(model_dir)

    results = {}
    for method, by_split in probabilities.items():
        threshold = screening_threshold(labels["validation"], by_split["validation"], names)
        results[method] = {split: measures(labels[split], by_split[split], names, threshold) for split in by_split}

    print(
        f"Herlev cells, split by source image (seed {args.seed}): "
        + ", ".join(f"{name} {len(split)}" for name, split in splits.items())
    )
    print(
        f"classical features and regression: {classical_seconds:.0f} s; model training: "
        + (f"{train_seconds / 60:.1f} min" if train_seconds else "not run (--model)")
    )
    header = (
        "| method | split | 7-class accuracy | normal/abnormal accuracy | sensitivity | specificity | ROC-AUC "
        "| threshold |"
    )
    print(header + "\n|" + "---|" * 8)
    for method, by_split in results.items():
        for split, result in by_split.items():
            cells = [
                f"{result[m]['estimate']:.3f} [{result[m]['wilson'][0]:.3f}, {result[m]['wilson'][1]:.3f}]"
                for m in MEASURES
            ]
            auc = "n/a" if result["roc_auc"] is None else f"{result['roc_auc']:.3f}"
            print(f"| {method} | {split} | " + " | ".join(cells) + f" | {auc} | {result['threshold']:.3f} |")
    verdicts = {}
    for baseline in ("class prior", "classical"):
        for split in ("validation", "test"):
            for measure in ("accuracy_7", "binary_accuracy"):
                verdict = beats(results["model"][split][measure], results[baseline][split][measure])
                verdicts[f"{baseline} / {split} / {measure}"] = verdict
                said = "yes" if verdict else "NO"
                print(f"model beats {baseline} on {split} {measure} by more than the intervals: {said}")
    validation = results["model"]["validation"]
    targets = {
        "binary_accuracy >= 0.92": validation["binary_accuracy"]["estimate"] >= TARGET_BINARY_ACCURACY,
        "sensitivity >= 0.95": validation["sensitivity"]["estimate"] >= TARGET_SENSITIVITY,
        "accuracy_7 >= 0.65": validation["accuracy_7"]["estimate"] >= TARGET_ACCURACY,
    }
    if train_seconds is not None:
        targets[f"training <= {TARGET_TRAIN_MINUTES} min"] = train_seconds <= TARGET_TRAIN_MINUTES * 60
    for target, met in targets.items():
        print(f"target (validation) {target}: {'met' if met else 'NOT met'}")
    return {"results": results, "beats": verdicts, "targets": targets, "train_seconds": train_seconds}


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=DefaultsHelpFormatter)
    parser.add_argument("--data", type=Path, default=sample_data_dir() / "herlev", help="the Herlev folder")
    parser.add_argument("--recipe", default="herlev", help="the training recipe (train/train_cell_classifier.py)")
    parser.add_argument("--model", type=Path, help="an already trained cell classifier folder (skips training)")
    parser.add_argument("--output-dir", type=Path, help="where the trained model goes (default: a temporary one)")
    parser.add_argument("--classical-c", default=1.0, type=float, help="inverse regularisation of the regression")
    parser.add_argument("--threads", type=int, help="torch CPU threads for training (default: torch's)")
    parser.add_argument("--seed", default=42, type=int)
    return parser


if __name__ == "__main__":
    main(get_args_parser().parse_args())
