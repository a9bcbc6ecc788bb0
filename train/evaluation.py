"""The evaluation run behind `train.evaluate` (its arguments and `--help` live there): the data read by the model's
readers, the overlap check against the model's own training data, the predictions, the metrics, the plots and the
card."""

import argparse
import json
import os
import sys
from collections import Counter
from pathlib import Path, PurePosixPath

import numpy as np

from cervix_hf.data import (
    INTEL_MOBILEODT_SUBSETS,
    class_counts,
    is_iarc_atlas,
    is_intel_mobileodt,
    read_detection_data,
    read_herlev,
    read_iarc_atlas,
    read_iarc_atlas_types,
    read_image_folder,
    read_intel_mobileodt,
    read_pairs_csv,
)
from cervix_hf.evaluation.metrics import compute_classification_metrics, compute_detection_metrics, evaluate_binary
from cervix_hf.evaluation.metrics.cell_classification import evaluate_grouped_classifier
from cervix_hf.evaluation.plots import EVALUATIONS_FOLDER, PLOTS_FOLDER, draw_detection_sample, write_evaluation_plots
from cervix_hf.evaluation.results import EvalResults, EvalResultsError, software_versions, write_json
from cervix_hf.hub import ModelReferenceError, resolve_model_reference
from cervix_hf.hub.card_spec import lookup_or_none
from cervix_hf.hub.cards import ModelCardError, write_model_card
from cervix_hf.io.files import EVAL_RESULTS_FILE
from cervix_hf.prediction.batch import BatchInput, Predictor, chunks
from cervix_hf.prediction.inference import detect_cells, load_model_input
from cervix_hf.registry import family

from .classical_detection import ClassicalNucleusDetector
from .evaluate import OVERLAP_SPLIT, SPLIT


def run(args: argparse.Namespace) -> int:
    from cervix_hf.prediction.loader import load

    try:  # the evaluation is written into the folder, so it must be a local one
        resolve_model_reference(str(args.model), local_only=True)
    except ModelReferenceError as error:
        return _fail(f"--model {error}")
    if not args.data.exists():
        return _fail(f"--data {args.data}: no such file or folder.")
    loaded = load(str(args.model), "torch")
    model, processor = loaded.model, loaded.processor
    evaluate = loaded.record.evaluation
    data_name = _data_name(args.data) + "".join(f"-{subset}" for subset in args.subset or ())
    output_dir = args.output_dir or args.model / EVALUATIONS_FOLDER / data_name
    try:
        eval_results = evaluate(model, processor, args, output_dir)
        eval_results.software = software_versions()
        eval_results.validate()
    except (SystemExit, ValueError, EvalResultsError) as error:
        return _fail(str(error))
    output_dir.mkdir(parents=True, exist_ok=True)
    write_json(output_dir / EVAL_RESULTS_FILE, eval_results.to_dict())
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
    """The model's headline figures, as its card's model index names them (its record's `index_metrics`)."""
    results = eval_results.to_dict()
    values = [
        (metric.name, lookup_or_none(results, metric.path)) for metric in family(eval_results.model_type).index_metrics
    ]
    return "; ".join(f"{name} {value:.3f}" for name, value in values if isinstance(value, (int, float)))


def _training_of(model_dir: Path) -> dict:
    """The model's own training summary, from its training evaluation, which an evaluation keeps with it."""
    if (model_dir / EVAL_RESULTS_FILE).is_file():
        return json.loads((model_dir / EVAL_RESULTS_FILE).read_text())["training"]
    return {
        "stages": [],
        "augmentation": None,
        "batch_size": None,
        "model_size": None,
        "note": "the model folder records no training",
    }


def _data_name(data: Path) -> str:
    """A data set's name: its folder's or file's (`.` and a trailing `/` name the folder itself)."""
    return Path(os.path.abspath(data)).name


def _data(args: argparse.Namespace, **facts) -> dict:
    return {"source": args.data.name, "seed": None, "evaluated": "every image of the data set", **facts}


def _colponet_records(args: argparse.Namespace):
    """The labelled photos of `--data` by its layout (the IARC atlas, the competition's, else `<root>/<class>/`),
    what was read, told to the user, and the layout's name."""
    data, subsets = args.data, args.subset
    if subsets and not is_intel_mobileodt(data):
        raise SystemExit(
            f"--subset {' '.join(subsets)}: {data} is not in the competition layout (train/, "
            "additional_Type_N_v2/, test/ with solution_stg1_release.csv)."
        )
    if is_iarc_atlas(data):
        records = read_iarc_atlas_types(data, allow_outside_root=args.allow_outside_root)
        skipped = ", ".join(f"{case} ({reason})" for case, reason in records.skipped_cases)
        print(
            f"Read {data} as the IARC atlas: {len(records)} case(s), one photo after acetic acid each, typed by "
            f"the case's provisional diagnosis; skipped {len(records.skipped_cases)} case(s)"
            + (f": {skipped}." if skipped else ".")
        )
        return records, "iarc-atlas"
    if is_intel_mobileodt(data):
        records = read_intel_mobileodt(data, subsets or INTEL_MOBILEODT_SUBSETS, args.allow_outside_root)
        counts = Counter(records.subsets)
        which = "the subset(s) asked for" if subsets else "every subset present (--subset picks some)"
        print(
            f"Read {data} in the competition layout, {which}: "
            + ", ".join(f"{subset} {count} photo(s)" for subset, count in counts.items())
            + "."
        )
        return records, "intel-mobileodt"
    records = read_image_folder(data, allow_outside_root=args.allow_outside_root)
    if records.label_names == ["test"]:
        raise SystemExit(
            f"--data {data}: test/ holds the competition's test photos, but their labels, "
            f"solution_stg1_release.csv, are not in {data}; put the csv beside test/."
        )
    return records, "image-folder"


def _inside_data_set(path: str, name: str) -> str:
    """A recorded photo path (`<data set name>/<path inside it>`, as training runs write them) inside its data set."""
    parts = PurePosixPath(path).parts
    start = max((i + 1 for i, part in enumerate(parts) if part == name), default=0)
    return PurePosixPath(*parts[start:]).as_posix() if parts[start:] else path


def _training_overlap(args: argparse.Namespace, paths: list[str]) -> dict:
    """
    Which evaluated photos overlap the model's own training data, told from the training run's `eval_results.json`:
    its data set (`data.source`) and the photos it held out and evaluated on (`predictions`). The evaluated data set
    is the training one when it has the same name, or when it holds a photo at the same place as a recorded one (a
    copy under another name). Then every photo that is not a recorded one overlaps, unless it lies in a top folder
    (e.g. `test/`) from which none of the recorded photos came: the training split did not draw from it.
    """
    record_file = args.model / EVAL_RESULTS_FILE
    if not record_file.is_file():
        return {
            "checked": False,
            "overlapping": [],
            "note": "the model folder records no training data "
            f"({EVAL_RESULTS_FILE}): overlap with it could not be checked",
        }
    record = json.loads(record_file.read_text())
    source = _data_name(Path(str(record["data"]["source"])))
    held_out = {_inside_data_set(str(row["path"]), source) for row in record.get("predictions") or [] if "path" in row}
    evaluated = [Path(os.path.relpath(path, args.data)).as_posix() for path in paths]
    same_data_set = _data_name(args.data) == source or bool(held_out & set(evaluated))
    drawn_from = {key.split("/")[0] for key in held_out}
    overlapping = [
        key
        for key in evaluated
        if same_data_set and key not in held_out and (not drawn_from or key.split("/")[0] in drawn_from)
    ]
    return {
        "checked": True,
        "training_data": source,
        "held_out_photos_recorded": len(held_out),
        "overlapping": overlapping,
    }


def _refuse_or_flag_overlap(args: argparse.Namespace, overlap: dict, total: int) -> str:
    """The split name of the evaluation, after refusing an overlap with the training data or saying it loudly."""
    if not overlap["checked"]:
        print(f"Note: {overlap['note']}.")
        return SPLIT
    overlapping = overlap["overlapping"]
    if not overlapping:
        print(
            f"Split {SPLIT}: no photo of {args.data} is among the training data of the model "
            f"({overlap['training_data']})."
        )
        return SPLIT
    problem = (
        f"{len(overlapping)} of {total} photo(s) of {args.data} overlap the model's own training data: they "
        f"are of {overlap['training_data']}, the data set it was trained on, and not among the "
        f"{overlap['held_out_photos_recorded']} photo(s) its training run held out "
        f"(e.g. {overlapping[0]})"
    )
    if not args.allow_overlap:
        raise SystemExit(
            f"{problem}. Their figures would flatter the model. Evaluate other photos (e.g. --subset "
            f"test), or pass --allow-overlap to evaluate them anyway, named {OVERLAP_SPLIT}."
        )
    warning = (
        f"WARNING: {problem}. The split is named {OVERLAP_SPLIT}, not {SPLIT}: these figures are not an "
        "independent test."
    )
    print(warning)
    print(warning, file=sys.stderr)
    return OVERLAP_SPLIT


def _check_labels(model, data_names, args) -> None:
    names = [model.config.id2label[i] for i in range(len(model.config.id2label))]
    if list(data_names) != names:
        raise SystemExit(f"--data {args.data} has the classes {list(data_names)}, but the model predicts {names}.")


def evaluate_colponet(model, processor, args, output_dir: Path) -> EvalResults:
    records, layout = _colponet_records(args)
    names = list(records.label_names)
    _check_labels(model, names, args)
    overlap = _training_overlap(args, records.paths)
    split = _refuse_or_flag_overlap(args, overlap, len(records))
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
        data=_data(
            args,
            layout=layout,
            class_counts={split: class_counts(labels, names)},
            subsets=dict(Counter(records.subsets)),
            skipped=records.skipped,
            training_overlap={**overlap, "overlapping": len(overlap["overlapping"])},
            quality_gate={
                "checked": len(rows),
                "would_reject": rejected,
                "laplacian_threshold": processor.quality_laplacian_threshold,
                "fft_threshold": processor.quality_fft_threshold,
            },
        ),
        training=_training_of(args.model),
        evaluated_on=split,
        extra={
            "predictions": [  # named as training runs name theirs: <data set name>/<path inside it>
                {
                    "path": f"{_data_name(args.data)}/{Path(os.path.relpath(path, args.data)).as_posix()}",
                    "label": names[label],
                    "probabilities": dict(zip(names, map(float, p))),
                }
                for path, label, p in zip(records.paths, labels, probabilities)
            ]
        },
    )


def evaluate_cell_detector(model, processor, args, output_dir: Path) -> EvalResults:
    records, data_format = read_detection_data(
        args.data, args.format, args.annotations, args.box_from, args.allow_outside_root
    )
    for warning in records.warnings:
        print(f"WARNING: {warning}", file=sys.stderr)
    names = list(records.label_names)
    _check_labels(model, names, args)
    truths, predictions = [], []
    for record in records.records:
        image = load_model_input(record.image_path, "cell_detector")
        cells = detect_cells(model, processor, image, 0.0)
        truths.append({"boxes": np.asarray(record.boxes).reshape(-1, 4), "labels": np.asarray(record.labels)})
        predictions.append(
            {
                "boxes": np.array([c.box for c in cells]).reshape(-1, 4),
                "labels": np.array([names.index(c.label) for c in cells], dtype=int),
                "scores": np.array([c.score for c in cells]),
            }
        )
    metrics = compute_detection_metrics(truths, predictions, names)
    baseline = None
    if data_format == "isbi2014":  # the non-learned baseline, scored by the same code on the same images
        classical = ClassicalNucleusDetector()
        found = [classical(record.image_path) for record in records.records]
        baseline = {
            "method": "train.classical_detection.ClassicalNucleusDetector",
            "settings": classical.to_dict(),
            "metrics": compute_detection_metrics(truths, found, names),
        }
    if records.records:
        first = records.records[0]
        draw_detection_sample(
            load_model_input(first.image_path, "cell_detector"),
            truths[0],
            predictions[0],
            names,
            output_dir,
            model.config.box_score_threshold,
            Path(first.image_path).name,
        )
    return EvalResults(
        model_type="cell_detector",
        label_names=names,
        metrics=metrics,
        data=_data(
            args,
            format=data_format,
            test_images=[Path(r.image_path).name for r in records.records],
            images_per_split={SPLIT: len(records.records)},
            boxes_per_class_per_split={SPLIT: records.box_counts()},
            reader_warnings=records.warnings,
        ),
        training=_training_of(args.model),
        evaluated_on=SPLIT,
        extra={"export_threshold": model.config.box_score_threshold, "classical_baseline": baseline},
    )


def evaluate_prepost_fusion(model, processor, args, output_dir: Path) -> EvalResults:
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
        data=_data(
            args,
            post_view=args.post if args.data.is_dir() else None,
            class_counts={SPLIT: class_counts(labels, names)},
            skipped=records.skipped,
            operating_points_from="the model's saved ones"
            if points
            else "chosen on these same cases (the model has none saved): optimistic",
        ),
        training=_training_of(args.model),
        evaluated_on=SPLIT,
        extra={
            "predictions": [
                {"case_id": r.case_id, "label": int(label), "probability": float(score)}
                for r, label, score in zip(records.records, labels, scores)
            ]
        },
    )


def evaluate_cell_classifier(model, processor, args, output_dir: Path) -> EvalResults:
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
        metrics=evaluate_grouped_classifier(
            labels, probabilities, names, config.label_groups, positive, config.decision_threshold, points
        ),
        data=_data(
            args,
            class_counts={SPLIT: class_counts(labels, names)},
            source_images={SPLIT: len(set(records.source_images))},
        ),
        training=_training_of(args.model),
        evaluated_on=SPLIT,
        extra={
            "label_groups": config.label_groups,
            "positive_group": positive,
            "predictions": [
                {
                    "image": Path(path).name,
                    "source_image": source,
                    "label": names[label],
                    "probabilities": dict(zip(names, map(float, p))),
                }
                for path, source, label, p in zip(records.paths, records.source_images, labels, probabilities)
            ],
        },
    )
