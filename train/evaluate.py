"""Evaluate a saved model on a labelled data set: `eval_results.json` in the training runs' layout, its plots, and
optionally the model card again.

    python -m train.evaluate --model checkpoints/colponet --data ../shared/data/intel-mobileodt-sample
    cervix-hf evaluate --model checkpoints/cell_detector --data ../shared/data/isbi2014-edf --output-dir eval/isbi
    cervix-hf evaluate --model checkpoints/prepost_fusion --data ATLAS_OR_PAIRS_CSV --update-card

Every image (pair) of `--data` is evaluated, read by the readers training uses: ColpoNet the Intel & MobileODT
layout or a `<root>/<class>/` folder; the detector ISBI 2014, SIPaKMeD, or a CSV/COCO/VOC annotation file
(`--format`, `--annotations`); the fusion model the IARC atlas or a pairs CSV; the cell classifier the Herlev layout
(`labels.csv`). The metrics are the training runs'
own (`cervix_hf.metrics`), on the split named `external`, and the file is checked against its contract before it is
written. ColpoNet classifies every photo, as its training evaluation does, and records how many its quality gate
would have rejected; the fusion model decides at its saved threshold and marks its saved operating points; on ISBI
data the detector is compared with the classical baseline on the same images.

The results go to `--output-dir` (default: `<model>/evaluations/<data name>/`). `--update-card` renders the model
card again, which then links every evaluation in the model folder's `evaluations/` (its file and plots) beside the
training run's own, which it keeps describing; `push-to-hub` publishes them with the model.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from cervix_hf.batch import BatchInput, Predictor, chunks
from cervix_hf.classical_detection import ClassicalNucleusDetector
from cervix_hf.cli import DefaultsHelpFormatter
from cervix_hf.data import class_counts, read_herlev, read_iarc_atlas, read_pairs_csv
from cervix_hf.eval_results import EvalResults, EvalResultsError
from cervix_hf.evaluation_plots import EVALUATIONS_FOLDER, PLOTS_FOLDER, draw_detection_sample, write_evaluation_plots
from cervix_hf.files import EVAL_RESULTS_FILE
from cervix_hf.hub.cards import ModelCardError, write_model_card
from cervix_hf.inference import detect_cells, load_model_input
from cervix_hf.metrics import compute_classification_metrics, compute_detection_metrics, evaluate_binary
from cervix_hf.metrics.cell_classification import evaluate_grouped_classifier

from . import train_cell_detector, train_colponet
from .engine import _write_json, software_versions

SPLIT = "external"


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=DefaultsHelpFormatter)
    parser.add_argument("--model", required=True, type=Path, help="a saved model folder")
    parser.add_argument("--data", required=True, type=Path, help="a labelled data set the readers understand")
    parser.add_argument("--output-dir", type=Path, help="where to write (default: <model>/evaluations/<data name>)")
    parser.add_argument("--update-card", action="store_true", help="render the model card again, linking the "
                        "model folder's evaluations")  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=8, help="photos or pairs per batch")
    parser.add_argument("--format", default="auto", help="detector data: auto, isbi2014, sipakmed, csv, coco, voc")
    parser.add_argument("--annotations", type=Path, help="detector data in csv, coco or voc: the annotation file")
    parser.add_argument("--box-from", default="nucleus", help="SIPaKMeD: boxes from the nucleus or cytoplasm masks")
from cervix_hf.hub import ModelReferenceError, resolve_model_reference
    parser.add_argument("--post", default="acetic", help="IARC atlas: the post-stain view (acetic or lugol)")
    parser.add_argument("--allow-outside-root", action="store_true", help="accept annotation paths, and symbolic "
                        "links of a data folder, that lead outside --data")  # fmt: skip
    return parser


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    from cervix_hf.inference import load_pretrained
    from cervix_hf.registry import family
    from transformers import AutoConfig

    try:  # the evaluation is written into the folder, so it must be a local one
        resolve_model_reference(str(args.model), local_only=True)
    except ModelReferenceError as error:
        return _fail(f"--model {error}")
    if not args.data.exists():
        return _fail(f"--data {args.data}: no such file or folder.")
    model_type = AutoConfig.from_pretrained(args.model).model_type
    model, processor = load_pretrained(str(args.model), auto_class=family(model_type).task_auto_class)
    evaluate = {"colponet": _colponet, "cell_detector": _detector, "prepost_fusion": _prepost,
                "cell_classifier": _cell_classifier}.get(model_type)  # fmt: skip
    if evaluate is None:
        return _fail(f"--model {args.model} holds a {model_type!r} model, which this command cannot evaluate.")
    output_dir = args.output_dir or args.model / EVALUATIONS_FOLDER / args.data.name
    try:
        eval_results = evaluate(model, processor, args, output_dir)
        eval_results.software = software_versions()
        eval_results.validate()
    except (SystemExit, ValueError, EvalResultsError) as error:
        return _fail(str(error))
    output_dir.mkdir(parents=True, exist_ok=True)
    _write_json(output_dir / EVAL_RESULTS_FILE, eval_results.to_dict())
    plots = write_evaluation_plots(eval_results.to_dict(), output_dir)
    print(f"Wrote {output_dir / EVAL_RESULTS_FILE} and {len(plots)} plot(s) in {output_dir / PLOTS_FOLDER}.")
    print(_headline(eval_results))
    if args.update_card:
        try:
            print(f"Wrote {write_model_card(args.model)}")
        except ModelCardError as error:
            return _fail(f"the card could not be rendered: {error}")
    return 0


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _headline(eval_results: EvalResults) -> str:
    metrics = eval_results.metrics
    if eval_results.model_type == "colponet":
        return f"accuracy {metrics['accuracy']:.3f}, log loss {metrics['log_loss']:.3f}"
    if eval_results.model_type == "cell_detector":
        return f"mAP@[.5:.95] {metrics['map'] or 0:.3f}, mAP@.5 {metrics['map_50'] or 0:.3f}"
    if eval_results.model_type == "cell_classifier":
        report = metrics["binary"]["report"]
        return f"7-class accuracy {metrics['accuracy']:.3f}; at threshold {report['threshold']:.3f}: normal/abnormal " \
            f"accuracy {report['accuracy']:.3f}, sensitivity {report['sensitivity']}, " \
            f"specificity {report['specificity']}"  # fmt: skip
    report = metrics["report"]
    return f"at threshold {metrics['threshold']:.3f}: sensitivity {report['sensitivity']}, specificity " \
        f"{report['specificity']}, ROC-AUC {report['roc_auc']}"  # fmt: skip


def _training_of(model_dir: Path) -> dict:
    """The model's own training summary, from its training evaluation, which an evaluation keeps with it."""
    if (model_dir / EVAL_RESULTS_FILE).is_file():
        return json.loads((model_dir / EVAL_RESULTS_FILE).read_text())["training"]
    return {"stages": [], "augmentation": None, "batch_size": None, "model_size": None,
            "note": "the model folder records no training"}  # fmt: skip


def _data(args: argparse.Namespace, **facts) -> dict:
    return {"source": args.data.name, "seed": None, "evaluated": "every image of the data set", **facts}


def _check_labels(model, data_names, args) -> None:
    names = [model.config.id2label[i] for i in range(len(model.config.id2label))]
    if list(data_names) != names:
        raise SystemExit(f"--data {args.data} has the classes {list(data_names)}, but the model predicts {names}.")


def _colponet(model, processor, args, output_dir: Path) -> EvalResults:
    records = train_colponet.load_records(args.data)
    names = list(records.label_names)
    _check_labels(model, names, args)
    predictor = Predictor("colponet", model, processor, ignore_quality_gate=True)
    items = [BatchInput((str(path),)) for path in records.paths]
    rows = [row for chunk in chunks(items, args.batch_size) for row in predictor(chunk)]
    failed = [row["image"] for row in rows if row["error"]]
    if failed:
        raise SystemExit(f"{len(failed)} photo(s) could not be read, e.g. {failed[0]}; fix or remove them first.")
    probabilities = np.array([[row[f"probability_{name}"] for name in names] for row in rows])
    labels = np.asarray(records.labels)
    rejected = sum(not row["quality_acceptable"] for row in rows)
    return EvalResults(
        model_type="colponet",
        label_names=names,
        metrics=compute_classification_metrics(labels, probabilities, names),
        data=_data(args, class_counts={SPLIT: class_counts(labels, names)},
                   quality_gate={"checked": len(rows), "would_reject": rejected,
                                 "laplacian_threshold": processor.quality_laplacian_threshold,
                                 "fft_threshold": processor.quality_fft_threshold}),  # fmt: skip
        training=_training_of(args.model),
        evaluated_on=SPLIT,
        extra={"predictions": [
            {"path": Path(path).name, "label": names[label], "probabilities": dict(zip(names, map(float, p)))}
            for path, label, p in zip(records.paths, labels, probabilities)
        ]},  # fmt: skip
    )


def _detector(model, processor, args, output_dir: Path) -> EvalResults:
    reader_args = argparse.Namespace(format=args.format, data=args.data, annotations=args.annotations,
                                     allow_outside_root=args.allow_outside_root, box_from=args.box_from)  # fmt: skip
    records, data_format = train_cell_detector.load_records(reader_args)
    names = list(records.label_names)
    _check_labels(model, names, args)
    truths, predictions = [], []
    for record in records.records:
        image = load_model_input(record.image_path, "cell_detector")
        cells = detect_cells(model, processor, image, 0.0)
        truths.append({"boxes": np.asarray(record.boxes).reshape(-1, 4), "labels": np.asarray(record.labels)})
        predictions.append({"boxes": np.array([c.box for c in cells]).reshape(-1, 4),
                            "labels": np.array([names.index(c.label) for c in cells], dtype=int),
                            "scores": np.array([c.score for c in cells])})  # fmt: skip
    metrics = compute_detection_metrics(truths, predictions, names)
    baseline = None
    if data_format == "isbi2014":  # the non-learned baseline, scored by the same code on the same images
        classical = ClassicalNucleusDetector()
        found = [classical(record.image_path) for record in records.records]
        baseline = {"method": "cervix_hf.classical_detection.ClassicalNucleusDetector",
                    "settings": classical.to_dict(), "metrics": compute_detection_metrics(truths, found, names)}  # fmt: skip
    if records.records:
        first = records.records[0]
        draw_detection_sample(load_model_input(first.image_path, "cell_detector"), truths[0], predictions[0], names,
                              output_dir, model.config.box_score_threshold, Path(first.image_path).name)  # fmt: skip
    return EvalResults(
        model_type="cell_detector",
        label_names=names,
        metrics=metrics,
        data=_data(args, format=data_format, test_images=[Path(r.image_path).name for r in records.records],
                   images_per_split={SPLIT: len(records.records)},
                   boxes_per_class_per_split={SPLIT: records.box_counts()}, reader_warnings=records.warnings),  # fmt: skip
        training=_training_of(args.model),
        evaluated_on=SPLIT,
        extra={"export_threshold": model.config.box_score_threshold, "classical_baseline": baseline},
    )


def _prepost(model, processor, args, output_dir: Path) -> EvalResults:
    if args.data.is_file():
        records = read_pairs_csv(args.data, allow_outside_root=args.allow_outside_root)
    else:
        records = read_iarc_atlas(args.data, post=args.post, allow_outside_root=args.allow_outside_root)
    predictor = Predictor("prepost_fusion", model, processor, threshold=0.5)
    items = [BatchInput((r.pre_path, r.post_path)) for r in records.records]
    rows = [row for chunk in chunks(items, args.batch_size) for row in predictor(chunk)]
    failed = [row["pre"] for row in rows if row["error"]]
    if failed:
        raise SystemExit(f"{len(failed)} pair(s) could not be read, e.g. {failed[0]}; fix or remove them first.")
    labels = np.array(records.labels, dtype=int)
    scores = np.array([row["probability"] for row in rows], dtype=float)
    config = model.config
    points = config.operating_points or None  # the saved ones, chosen on the training run's validation cases
    metrics = evaluate_binary(labels, scores, config.decision_threshold, points)
    names = list(records.label_names)
    return EvalResults(
        model_type="prepost_fusion",
        label_names=names,
        metrics=metrics,
        data=_data(args, post_view=args.post if args.data.is_dir() else None,
                   class_counts={SPLIT: class_counts(labels, names)}, skipped=records.skipped,
                   operating_points_from="the model's saved ones" if points else
                   "chosen on these same cases (the model has none saved): optimistic"),  # fmt: skip
        training=_training_of(args.model),
        evaluated_on=SPLIT,
        extra={"predictions": [{"case_id": r.case_id, "label": int(label), "probability": float(score)}
                               for r, label, score in zip(records.records, labels, scores)]},  # fmt: skip
    )


def _cell_classifier(model, processor, args, output_dir: Path) -> EvalResults:
    records = read_herlev(args.data, allow_outside_root=args.allow_outside_root)
    names = list(records.label_names)
    _check_labels(model, names, args)
    config = model.config
    predictor = Predictor("cell_classifier", model, processor)
    items = [BatchInput((path,)) for path in records.paths]
    rows = [row for chunk in chunks(items, args.batch_size) for row in predictor(chunk)]
    failed = [row["image"] for row in rows if row["error"]]
    if failed:
        raise SystemExit(f"{len(failed)} cell image(s) could not be read, e.g. {failed[0]}; fix or remove them first.")
    probabilities = np.array([[row[f"probability_{name}"] for name in names] for row in rows])
    labels = np.asarray(records.labels)
    points = config.operating_points or None  # the saved ones, chosen on the training run's validation cells
    _, positive = config.group_names
    return EvalResults(
        model_type="cell_classifier",
        label_names=names,
        metrics=evaluate_grouped_classifier(labels, probabilities, names, config.label_groups, positive,
                                            config.decision_threshold, points),  # fmt: skip
        data=_data(args, class_counts={SPLIT: class_counts(labels, names)},
                   source_images={SPLIT: len(set(records.source_images))}),  # fmt: skip
        training=_training_of(args.model),
        evaluated_on=SPLIT,
        extra={
            "label_groups": config.label_groups,
            "positive_group": positive,
            "predictions": [
                {"image": Path(path).name, "source_image": source, "label": names[label],
                 "probabilities": dict(zip(names, map(float, p)))}
                for path, source, label, p in zip(records.paths, records.source_images, labels, probabilities)
            ],
        },  # fmt: skip
    )


if __name__ == "__main__":
    sys.exit(main())
