"""Plots of an evaluation, drawn with matplotlib from `eval_results.json`: PNG files in the model folder's `plots/`,
which the model card links with relative paths (so the Hub shows them) and the app's Models tab shows.

- ColpoNet: the confusion matrix, and one ROC curve per type (one type against the others).
- Pre/post fusion: the ROC and precision-recall curves with the decision threshold and the operating points marked
  where they fall on these cases, and a reliability (calibration) diagram.
- Cell classifier: the confusion matrix and the per-class ROC curves, as ColpoNet's, and the ROC curve of the
  positive group's probability (abnormal: the sum of its classes') with the operating points marked.
- Cell detector: precision against recall per class at IoU 0.5 (COCO's 101 recall points, `pr_curve_50`); and, from
  the evaluation code that has the images, one image with its true boxes and the detections
  ([`draw_detection_sample`]).

Every plot is computed from the file's own numbers (per-case predictions, the confusion matrix, the PR curves), so
it shows what the card's tables say.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cervix_hf.registry import FAMILIES_BY_TYPE

PLOTS_FOLDER = "plots"
DETECTION_SAMPLE = "detection_sample.png"
# `cervix-hf evaluate` writes each evaluation on other data into `<model>/evaluations/<data name>/`.
EVALUATIONS_FOLDER = "evaluations"


@dataclass(frozen=True)
class Plot:
    """A plot file, relative to the model folder, and its title."""

    path: str
    title: str


# The plots each model's evaluation gives, in the order the card shows them.
PLOT_TITLES = {
    "confusion_matrix.png": "Confusion matrix",
    "roc.png": "ROC curves",
    "precision_recall.png": "Precision against recall",
    "reliability.png": "Reliability (calibration)",
    "group_roc.png": "ROC curve of the positive group (normal against abnormal), with the operating points",
    DETECTION_SAMPLE: "Detections against the true boxes, on one evaluated image",
}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def write_evaluation_plots(eval_results: dict, model_dir: str | Path) -> list[Plot]:
    """Draws the plots of `eval_results` (the parsed file) into `model_dir/plots/`; returns them."""
    folder = Path(model_dir) / PLOTS_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    record = FAMILIES_BY_TYPE.get(eval_results["model_type"])
    draw = PLOTTERS.get(record.evaluation_plots) if record else None
    names = draw(eval_results, folder) if draw else []
    return [Plot(f"{PLOTS_FOLDER}/{name}", PLOT_TITLES[name]) for name in names]


def plots_in(model_dir: str | Path) -> list[Plot]:
    """The plots present in `model_dir/plots/`, in the card's order."""
    folder = Path(model_dir) / PLOTS_FOLDER
    return [Plot(f"{PLOTS_FOLDER}/{name}", title) for name, title in PLOT_TITLES.items() if (folder / name).is_file()]


@dataclass(frozen=True)
class Evaluation:
    """An evaluation on other data in a model folder: its name, file and plots, relative to the model folder."""

    name: str
    path: str
    plots: list


def evaluations_in(model_dir: str | Path) -> list[Evaluation]:
    """The evaluations of `model_dir/evaluations/*/` that have an `eval_results.json`, by name."""
    folder = Path(model_dir) / EVALUATIONS_FOLDER
    found = sorted(path.parent for path in folder.glob("*/eval_results.json")) if folder.is_dir() else []
    return [
        Evaluation(
            where.name,
            f"{EVALUATIONS_FOLDER}/{where.name}/eval_results.json",
            [Plot(f"{EVALUATIONS_FOLDER}/{where.name}/{plot.path}", plot.title) for plot in plots_in(where)],
        )
        for where in found
    ]


def _save(figure, path: Path) -> None:
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    _pyplot().close(figure)


def _colponet(eval_results: dict, folder: Path) -> list[str]:
    from sklearn.metrics import roc_curve

    plt = _pyplot()
    names = eval_results["label_names"]
    matrix = np.asarray(eval_results["metrics"]["confusion_matrix"])
    figure, axes = plt.subplots(figsize=(4.5, 4))
    axes.imshow(matrix, cmap="Blues")
    for (row, column), value in np.ndenumerate(matrix):
        colour = "white" if value > matrix.max() / 2 else "black"
        axes.text(column, row, str(value), ha="center", va="center", color=colour)
    axes.set(
        xticks=range(len(names)),
        yticks=range(len(names)),
        xticklabels=names,
        yticklabels=names,
        xlabel="predicted",
        ylabel="true",
        title=f"{eval_results['evaluated_on']} ({matrix.sum()} photos)",
    )
    _save(figure, folder / "confusion_matrix.png")
    written = ["confusion_matrix.png"]
    predictions = eval_results.get("predictions") or []
    if predictions:
        truth = np.array([names.index(p["label"]) for p in predictions])
        probabilities = np.array([[p["probabilities"][name] for name in names] for p in predictions])
        figure, axes = plt.subplots(figsize=(4.5, 4))
        for index, name in enumerate(names):
            positive = truth == index
            if positive.all() or not positive.any():
                continue  # one class only: no ROC curve
            fpr, tpr, _ = roc_curve(positive, probabilities[:, index])
            axes.plot(fpr, tpr, label=f"{name} ({positive.sum()} of {len(truth)})")
        _roc_axes(axes)
        _save(figure, folder / "roc.png")
        written.append("roc.png")
    return written


def _roc_axes(axes) -> None:
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    axes.set(
        xlim=(0, 1),
        ylim=(0, 1.01),
        xlabel="false positive rate (1 - specificity)",
        ylabel="true positive rate (sensitivity)",
    )
    axes.legend(loc="lower right", fontsize="small")


def _prepost(eval_results: dict, folder: Path) -> list[str]:
    from sklearn.metrics import precision_recall_curve, roc_curve

    plt = _pyplot()
    predictions = eval_results.get("predictions") or []
    labels = np.array([int(p["label"]) for p in predictions])
    scores = np.array([float(p["probability"]) for p in predictions])
    if len(labels) == 0 or labels.min() == labels.max():
        return []  # one class only: no curve
    metrics = eval_results["metrics"]
    points = {"decision threshold": metrics["threshold"]}
    points |= {
        name: point["threshold"]
        for name, point in (metrics.get("operating_points") or {}).items()
        if point.get("threshold") is not None
    }
    where = {name: _rates(labels, scores, threshold) for name, threshold in points.items()}
    count = f"{len(labels)} cases, {labels.sum()} Positive"

    figure, axes = plt.subplots(figsize=(4.5, 4))
    fpr, tpr, _ = roc_curve(labels, scores)
    axes.plot(fpr, tpr, label=f"{eval_results['evaluated_on']} ({count})")
    for name, rates in where.items():
        axes.plot(1 - rates["specificity"], rates["sensitivity"], "o", label=f"{name} ({points[name]:.2f})")
    _roc_axes(axes)
    _save(figure, folder / "roc.png")

    figure, axes = plt.subplots(figsize=(4.5, 4))
    precision, recall, _ = precision_recall_curve(labels, scores)
    axes.plot(recall, precision, label=count)
    for name, rates in where.items():
        if rates["precision"] is not None:
            axes.plot(rates["sensitivity"], rates["precision"], "o", label=f"{name} ({points[name]:.2f})")
    axes.axhline(labels.mean(), color="grey", linestyle=":", linewidth=1)  # a constant score's precision
    axes.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="recall (sensitivity)", ylabel="precision (PPV)")
    axes.legend(loc="lower left", fontsize="small")
    _save(figure, folder / "precision_recall.png")

    figure, axes = plt.subplots(figsize=(4.5, 4))
    bins = np.linspace(0, 1, 6)  # five bins: the evaluated split is small
    which = np.clip(np.digitize(scores, bins) - 1, 0, len(bins) - 2)
    for index in range(len(bins) - 1):
        inside = which == index
        if inside.any():
            axes.plot(scores[inside].mean(), labels[inside].mean(), "o", color="C0")
            axes.annotate(
                str(inside.sum()),
                (scores[inside].mean(), labels[inside].mean()),
                fontsize="small",
                textcoords="offset points",
                xytext=(4, 4),
            )
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    axes.set(
        xlim=(0, 1),
        ylim=(-0.02, 1.02),
        xlabel="mean predicted probability of Positive (per bin)",
        ylabel="fraction Positive (per bin)",
        title="each point: a bin, with its number of cases",
    )
    _save(figure, folder / "reliability.png")
    return ["roc.png", "precision_recall.png", "reliability.png"]


def _rates(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict:
    """Sensitivity, specificity and precision of deciding Positive at `scores >= threshold`."""
    positive = scores >= threshold
    hits = int((positive & (labels == 1)).sum())
    return {
        "sensitivity": hits / max(1, int((labels == 1).sum())),
        "specificity": int((~positive & (labels == 0)).sum()) / max(1, int((labels == 0).sum())),
        "precision": hits / int(positive.sum()) if positive.any() else None,
    }


def _grouped(eval_results: dict, folder: Path) -> list[str]:
    from sklearn.metrics import roc_curve

    written = _colponet(eval_results, folder)
    predictions = eval_results.get("predictions") or []
    members = eval_results["label_groups"][eval_results["positive_group"]]
    labels = np.array([int(p["label"] in members) for p in predictions])
    scores = np.array([sum(p["probabilities"][name] for name in members) for p in predictions])
    if len(labels) == 0 or labels.min() == labels.max():
        return written  # one group only: no curve
    plt = _pyplot()
    binary = eval_results["metrics"]["binary"]
    points = {
        name: point["threshold"]
        for name, point in binary["operating_points"].items()
        if point.get("threshold") is not None
    }
    figure, axes = plt.subplots(figsize=(4.5, 4))
    fpr, tpr, _ = roc_curve(labels, scores)
    axes.plot(
        fpr,
        tpr,
        label=f"{eval_results['evaluated_on']} ({len(labels)} cells, {labels.sum()} {eval_results['positive_group']})",
    )
    for name, threshold in points.items():
        rates = _rates(labels, scores, threshold)
        axes.plot(1 - rates["specificity"], rates["sensitivity"], "o", label=f"{name} ({threshold:.2f})")
    _roc_axes(axes)
    _save(figure, folder / "group_roc.png")
    return [*written, "group_roc.png"]


def _detector(eval_results: dict, folder: Path) -> list[str]:
    plt = _pyplot()
    per_class = eval_results["metrics"]["per_class"]
    curves = {name: scores.get("pr_curve_50") for name, scores in per_class.items()}
    curves = {name: curve for name, curve in curves.items() if curve}
    written = []
    if curves:
        figure, axes = plt.subplots(figsize=(4.5, 4))
        recall = np.linspace(0, 1, 101)
        for name, curve in curves.items():
            precision = np.array([np.nan if value is None else value for value in curve], dtype=float)
            ap = per_class[name]["ap_50"]
            axes.plot(recall, precision, label=f"{name} (AP@.5 {ap:.3f}, {per_class[name]['num_ground_truth']} boxes)")
        axes.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="recall", ylabel="precision", title="IoU 0.5")
        axes.legend(loc="lower left", fontsize="small")
        _save(figure, folder / "precision_recall.png")
        written.append("precision_recall.png")
    if (folder / DETECTION_SAMPLE).is_file():
        written.append(DETECTION_SAMPLE)
    return written


# The plotter of each `ModelFamily.evaluation_plots` kind.
PLOTTERS = {"classification": _colponet, "binary": _prepost, "detection": _detector, "grouped": _grouped}


def draw_detection_sample(
    image, truth: dict, found: dict, label_names: Sequence[str], model_dir: str | Path, threshold: float, name: str
) -> Plot:
    """
    One evaluated image with its true boxes (dashed white) and the detections scoring above `threshold` (coloured
    by class), as `model_dir/plots/detection_sample.png`. `truth` and `found` are in the image's pixels, as
    `compute_detection_metrics` takes them.
    """
    plt = _pyplot()
    folder = Path(model_dir) / PLOTS_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    figure, axes = plt.subplots(figsize=(6, 6))
    axes.imshow(np.asarray(image))
    for box in np.asarray(truth["boxes"]).reshape(-1, 4):
        axes.add_patch(
            plt.Rectangle(
                box[:2], box[2] - box[0], box[3] - box[1], fill=False, edgecolor="white", linestyle="--", linewidth=1
            )
        )
    keep = np.asarray(found["scores"]) > threshold
    for box, label in zip(np.asarray(found["boxes"]).reshape(-1, 4)[keep], np.asarray(found["labels"])[keep]):
        axes.add_patch(
            plt.Rectangle(
                box[:2], box[2] - box[0], box[3] - box[1], fill=False, edgecolor=f"C{int(label) % 10}", linewidth=1.2
            )
        )
    shown = sorted({int(label) for label in np.asarray(found["labels"])[keep]})
    handles = [plt.Line2D([], [], color="white", linestyle="--", label="true box")]
    handles += [plt.Line2D([], [], color=f"C{i % 10}", label=label_names[i]) for i in shown]
    axes.legend(handles=handles, loc="upper right", fontsize="small", facecolor="lightgrey")
    axes.set_title(f"{name}: {len(truth['boxes'])} true boxes, {int(keep.sum())} detections above {threshold:g}")
    axes.axis("off")
    _save(figure, folder / DETECTION_SAMPLE)
    return Plot(f"{PLOTS_FOLDER}/{DETECTION_SAMPLE}", PLOT_TITLES[DETECTION_SAMPLE])
