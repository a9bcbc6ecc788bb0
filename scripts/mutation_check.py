"""Mutation check: would the fast tests notice the bugs that change the numbers users trust?

Each mutant below is one named one-line change to a module whose numbers users read (the metrics, the prediction
functions, the three models and their image processors, the quality gate, the data readers), modelling a bug that
would matter: a threshold that no longer counts itself, x and y swapped, a lost background offset, the wrong IoU
row. The check copies the working tree (its tracked and unignored files) to a temporary folder, once per job, runs
the unmutated tests there, then for each mutant applies it, runs the fast tests that cover its module:

    python -m pytest -x -q -p no:cacheprovider -m "not slow" --basetemp=... <the mutant's tests>

in the copy with the copy first on PYTHONPATH (so the copy's cervix_hf is the one imported), and restores the file.
A mutant is killed when a test fails or the run times out, and survives when every test passes.

    .venv/bin/python scripts/mutation_check.py                      # every mutant, today's tests
    .venv/bin/python scripts/mutation_check.py --list               # the mutants, with the bug each models
    .venv/bin/python scripts/mutation_check.py --only coco-max-detections-100 wilson-z-one-sided
    .venv/bin/python scripts/mutation_check.py --tests-from dbe464c # the kill rate of an older test suite

The unmutated run first: a test that fails there is deselected from every mutant's run, and a test file that cannot
be collected, or that the suite lacks, is left out; the report names them, and a mutant left without tests
survives. With `--tests-from REV` the copy's `tests/` is that revision's (`git archive REV tests`) and each mutant
runs the whole test files its selectors name (today's test names may not exist then). The exit code is 0 when at
least 90% of the mutants are killed, else 1.
"""

import argparse
import importlib.util
import io
import os
import queue
import re
import resource
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET_KILL_RATE = 0.9
UNMUTATED_TIMEOUT = 1800  # seconds for the unmutated run of every test the mutants use
PYTEST = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow"]
PYTEST_OK, PYTEST_TESTS_FAILED, PYTEST_NO_TESTS = 0, 1, 5


@dataclass(frozen=True)
class Mutant:
    """One bug: `original` (which must occur exactly once in `path`) becomes `replacement`; `tests` are the pytest
    selectors (test files or node ids) that should notice, the most pointed first, since a run stops at its first
    failure."""

    name: str
    bug: str
    path: str
    original: str
    replacement: str
    tests: tuple[str, ...]


BINARY = "tests/test_prepost_fusion_metrics.py"
CLASSIFICATION = "tests/test_colponet_metrics.py"
DETECTION_METRICS = "tests/test_cell_detector_metrics.py"
PREDICTIONS = "tests/test_predictions_follow_the_model.py"
PREDICT_CLI = "tests/test_predict_cli.py"
COLPONET = "tests/test_colponet_model.py"
DETECTOR = "tests/test_cell_detector_model.py"
PREPOST = "tests/test_prepost_fusion_model.py"
FROZEN = "tests/test_frozen_backbone.py"
QUALITY = "tests/test_colponet_quality_gate.py"
DETECTION_DATA = "tests/test_cell_detector_data.py"
INTEL_DATA = "tests/test_colponet_data.py"
PREPOST_DATA = "tests/test_prepost_fusion_data.py"
SURVIVORS = "tests/test_mutation_survivors.py"

# The fast tests of the model files, without the ones that start a fresh Python process (about 9 s each).
DETECTOR_FAST = tuple(
    f"{DETECTOR}::{test}"
    for test in (
        "test_background_class_is_added_once_and_defaults_suit_cells",
        "test_training_returns_losses_including_images_without_cells",
        "test_processor_pads_and_rejects_boxes_outside_the_image",
        "test_post_processing_rescales_boxes_to_the_target_size",
        "test_save_load_gives_identical_detections",
        "test_detected_boxes_are_in_original_image_pixels",
    )
)
FUSION_DECISIONS = tuple(
    f"{PREDICTIONS}::{test}"
    for test in (
        "test_the_fusion_decision_reads_the_post_stain_image",
        "test_the_fusion_decision_reads_the_pre_stain_image",
        "test_the_fusion_probability_is_the_sigmoid_of_the_models_logit",
    )
)
PREPOST_FAST = tuple(
    f"{PREPOST}::{test}"
    for test in (
        "test_forward_returns_loss_probabilities_and_attention_both_ways",
        "test_shared_backbone_halves_backbone_parameters_and_reads_both_images",
        "test_round_trip_keeps_logits_threshold_and_operating_points",
        "test_pipeline_uses_the_saved_threshold_or_a_named_operating_point",
    )
)
DETECTIONS = (
    f"{PREDICTIONS}::test_detector_boxes_scale_with_the_image_they_are_drawn_on",
    f"{PREDICTIONS}::test_detect_cells_returns_the_models_boxes_in_the_photos_pixels",
)

MUTANTS = [
    # Binary threshold analysis (cervix_hf/evaluation/metrics/binary.py): the pre/post model card's numbers.
    Mutant(
        "binary-threshold-itself-negative",
        "a score equal to the threshold is predicted Negative (documented: Positive)",
        "cervix_hf/evaluation/metrics/binary.py",
        "threshold * (1 - THRESHOLD_RELATIVE_TOLERANCE)",
        "threshold * (1 + THRESHOLD_RELATIVE_TOLERANCE)",
        (BINARY,),
    ),
    Mutant(
        "binary-fp-fn-swapped",
        "false positives and false negatives unpacked in the wrong order from the confusion matrix",
        "cervix_hf/evaluation/metrics/binary.py",
        "tn, fp, fn, tp = confusion_matrix(labels, predictions, labels=[0, 1]).ravel()",
        "tn, fn, fp, tp = confusion_matrix(labels, predictions, labels=[0, 1]).ravel()",
        (BINARY,),
    ),
    Mutant(
        "bootstrap-quantiles-one-sided",
        "the bootstrap interval takes the 5% and 95% quantiles for a 95% interval",
        "cervix_hf/evaluation/metrics/binary.py",
        "np.quantile(resampled, [(1 - confidence) / 2, (1 + confidence) / 2])",
        "np.quantile(resampled, [1 - confidence, confidence])",
        (BINARY,),
    ),
    Mutant(
        "wilson-z-one-sided",
        "the Wilson interval uses the one-sided z (1.645 for 95%)",
        "cervix_hf/evaluation/metrics/binary.py",
        "z = NormalDist().inv_cdf((1 + confidence) / 2)",
        "z = NormalDist().inv_cdf(confidence)",
        (BINARY,),
    ),
    Mutant(
        "screening-lowest-threshold",
        "the screening point is the lowest threshold reaching the sensitivity, not the highest",
        "cervix_hf/evaluation/metrics/binary.py",
        "int(np.flatnonzero(sensitivity >= target_sensitivity).max())",
        "int(np.flatnonzero(sensitivity >= target_sensitivity).min())",
        (BINARY,),
    ),
    Mutant(
        "balanced-tie-lowest-threshold",
        "Youden ties go to the lowest threshold instead of the one closest to 0.5",
        "cervix_hf/evaluation/metrics/binary.py",
        'key=lambda index: (abs(rows[index]["threshold"] - 0.5), index)',
        'key=lambda index: (rows[index]["threshold"], index)',
        (BINARY,),
    ),
    # Classification metrics (cervix_hf/evaluation/metrics/classification.py): the ColpoNet model card's numbers.
    Mutant(
        "log-loss-eps-float32",
        "the Kaggle log loss clips at 1e-7 instead of 1e-15",
        "cervix_hf/evaluation/metrics/classification.py",
        "KAGGLE_LOG_LOSS_EPS = 1e-15",
        "KAGGLE_LOG_LOSS_EPS = 1e-7",
        (CLASSIFICATION,),
    ),
    Mutant(
        "roc-auc-binary-column-0",
        "the two-class ROC-AUC ranks the probability of class 0",
        "cervix_hf/evaluation/metrics/classification.py",
        "roc_auc_score(references, probabilities[:, 1])",
        "roc_auc_score(references, probabilities[:, 0])",
        (CLASSIFICATION,),
    ),
    Mutant(
        "confusion-matrix-transposed",
        "the confusion matrix has predicted classes as rows",
        "cervix_hf/evaluation/metrics/classification.py",
        "confusion_matrix(references, predictions, labels=labels)",
        "confusion_matrix(predictions, references, labels=labels)",
        (CLASSIFICATION,),
    ),
    # COCO detection metrics (cervix_hf/evaluation/metrics/detection.py): the detector's model card.
    Mutant(
        "coco-ap75-at-iou-70",
        "mAP@.75 is read from the IoU 0.70 row",
        "cervix_hf/evaluation/metrics/detection.py",
        '"map_75": _mean_valid(precision[5, :, :, 0, -1])',
        '"map_75": _mean_valid(precision[4, :, :, 0, -1])',
        (DETECTION_METRICS,),
    ),
    Mutant(
        "coco-max-detections-100",
        "only COCO's default 100 detections per image count",
        "cervix_hf/evaluation/metrics/detection.py",
        "evaluator.params.maxDets = [1, 10, max_detections]",
        "evaluator.params.maxDets = [1, 10, 100]",
        (DETECTION_METRICS,),
    ),
    Mutant(
        "coco-bbox-given-as-xyxy",
        "boxes reach COCOeval as xyxy where it reads xywh",
        "cervix_hf/evaluation/metrics/detection.py",
        "float(box[2] - box[0]), float(box[3] - box[1])]",
        "float(box[2]), float(box[3])]",
        (DETECTION_METRICS,),
    ),
    Mutant(
        "coco-per-class-ap-wrong-axis",
        "a class's AP indexes the recall axis of COCO's precision array instead of the class axis",
        "cervix_hf/evaluation/metrics/detection.py",
        "ap=_mean_valid(precision[:, :, index, 0, -1])",
        "ap=_mean_valid(precision[:, index, :, 0, -1])",
        (f"{SURVIVORS}::test_per_class_ap_is_each_classs_own", DETECTION_METRICS),
    ),
    # Prediction functions (cervix_hf/prediction/inference.py): what the app and the command line show.
    Mutant(
        "cervix-type-logits-wrong-axis",
        "the logits are indexed on the class axis instead of the batch axis before the softmax",
        "cervix_hf/prediction/inference.py",
        'logits = model(pixel_values=inputs["pixel_values"]).logits[0]',
        'logits = model(pixel_values=inputs["pixel_values"]).logits[:, 0]',
        (
            f"{PREDICTIONS}::test_cervix_type_probabilities_are_the_models_under_their_own_names",
            f"{PREDICT_CLI}::test_predict_prints_types_gate_verdicts_and_errors",
        ),
    ),
    Mutant(
        "quality-gate-override-ignored",
        "a photo the gate rejects is not classified even when the user overrides the gate",
        "cervix_hf/prediction/inference.py",
        "return quality.is_acceptable or ignore_quality_gate",
        "return quality.is_acceptable",
        (f"{PREDICT_CLI}::test_predict_can_override_the_gate_and_says_it_is_not_a_diagnosis",),
    ),
    Mutant(
        "detect-cells-target-size-swapped",
        "detected boxes are rescaled to (width, height) instead of (height, width)",
        "cervix_hf/prediction/inference.py",
        "target_sizes=[(tile.height, tile.width)]",
        "target_sizes=[(tile.width, tile.height)]",
        (
            f"{PREDICTIONS}::test_detect_cells_returns_the_models_boxes_in_the_photos_pixels",
            f"{DETECTOR}::test_pipeline_in_fresh_process_returns_the_same_boxes_as_direct_use",
        ),
    ),
    Mutant(
        "prepost-default-threshold-ignored",
        "without a threshold the fusion decision uses 0.5, not the model's saved decision threshold",
        "cervix_hf/models/prepost_fusion/configuration_prepost_fusion.py",
        "return float(self.decision_threshold)",
        "return 0.5",
        (
            f"{SURVIVORS}::test_the_fusion_decision_uses_the_saved_threshold_by_default",
            f"{PREPOST}::test_pipeline_uses_the_saved_threshold_or_a_named_operating_point",
            *FUSION_DECISIONS,
        ),
    ),
    Mutant(
        "prepost-attention-read-backwards",
        "the app's attention map is the post-to-pre attention",
        "cervix_hf/prediction/inference.py",
        "attention = outputs.pre_to_post_attentions[0]",
        "attention = outputs.post_to_pre_attentions[0]",
        (f"{SURVIVORS}::test_the_attention_shown_is_the_pre_to_post_attention", *FUSION_DECISIONS),
    ),
    # ColpoNet (cervix_hf/models/colponet/modeling_colponet.py).
    Mutant(
        "colponet-class-weights-dropped",
        "the loss ignores config.class_weights",
        "cervix_hf/models/colponet/modeling_colponet.py",
        "labels.to(logits.device), weight=weight)",
        "labels.to(logits.device), weight=None)",
        (f"{COLPONET}::test_loss_is_class_weighted_cross_entropy",),
    ),
    Mutant(
        "colponet-frozen-backbone-batch-norm-trains",
        "a frozen backbone's batch norm re-estimates its statistics during training",
        "cervix_hf/models/colponet/modeling_colponet.py",
        "if not any(parameter.requires_grad for parameter in backbone.parameters()):",
        "if any(parameter.requires_grad for parameter in backbone.parameters()):",
        (f"{FROZEN}::test_frozen_backbone_keeps_its_batch_norm_statistics_after_model_train",),
    ),
    # Cell detector (cervix_hf/models/cell_detector/modeling_cell_detector.py).
    Mutant(
        "detector-targets-without-background-offset",
        "training labels reach torchvision without the +1 for its background class 0",
        "cervix_hf/models/cell_detector/modeling_cell_detector.py",
        '{"boxes": boxes, "labels": classes + 1}',
        '{"boxes": boxes, "labels": classes}',
        (f"{SURVIVORS}::test_a_detector_certain_of_background_pays_for_the_cell_it_misses", *DETECTOR_FAST),
    ),
    Mutant(
        "detector-labels-without-background-offset",
        "predicted labels keep torchvision's background offset (class k reported as k + 1)",
        "cervix_hf/models/cell_detector/modeling_cell_detector.py",
        'classes[i, :count] = detection["labels"] - 1',
        'classes[i, :count] = detection["labels"]',
        (f"{SURVIVORS}::test_a_detector_certain_of_a_class_labels_every_cell_with_it", *DETECTIONS, *DETECTOR_FAST),
    ),
    Mutant(
        "detector-mask-height-width-swapped",
        "the unpadded image size is read as (width, height) from the pixel mask",
        "cervix_hf/models/cell_detector/modeling_cell_detector.py",
        "[pixel_mask.any(dim=2).sum(dim=1), pixel_mask.any(dim=1).sum(dim=1)]",
        "[pixel_mask.any(dim=1).sum(dim=1), pixel_mask.any(dim=2).sum(dim=1)]",
        (f"{DETECTOR}::test_detected_boxes_are_in_original_image_pixels", *DETECTOR_FAST),
    ),
    # Cell detector image processor (cervix_hf/models/cell_detector/image_processing_cell_detector.py).
    Mutant(
        "detector-box-scale-x-y-swapped",
        "boxes are rescaled with the height ratio on x and the width ratio on y",
        "cervix_hf/models/cell_detector/image_processing_cell_detector.py",
        "[target_width / width, target_height / height] * 2",
        "[target_height / height, target_width / width] * 2",
        (f"{DETECTOR}::test_post_processing_rescales_boxes_to_the_target_size", *DETECTIONS),
    ),
    Mutant(
        "detector-threshold-inclusive",
        "a detection scoring exactly the threshold is kept (documented: strictly above)",
        "cervix_hf/models/cell_detector/image_processing_cell_detector.py",
        '(outputs["scores"][index] > threshold)',
        '(outputs["scores"][index] >= threshold)',
        (
            f"{SURVIVORS}::test_a_detection_scoring_exactly_the_threshold_is_dropped",
            f"{DETECTOR}::test_post_processing_rescales_boxes_to_the_target_size",
            f"{DETECTOR}::test_pipeline_in_fresh_process_returns_the_same_boxes_as_direct_use",
        ),
    ),
    Mutant(
        "detector-annotation-check-x-y-swapped",
        "training boxes are checked against the image's height on x and its width on y",
        "cervix_hf/models/cell_detector/image_processing_cell_detector.py",
        "(boxes[:, 2] > width) | (boxes[:, 3] > height)",
        "(boxes[:, 2] > height) | (boxes[:, 3] > width)",
        (f"{SURVIVORS}::test_a_box_inside_a_wide_image_is_accepted", *DETECTOR_FAST),
    ),
    # ColpoNet image processor (cervix_hf/models/colponet/image_processing_colponet.py).
    Mutant(
        "colponet-normalisation-mean",
        "photos are normalised with mean 0.5 instead of ImageNet's",
        "cervix_hf/models/colponet/image_processing_colponet.py",
        "image_mean = IMAGENET_DEFAULT_MEAN",
        "image_mean = [0.5, 0.5, 0.5]",
        (
            f"{SURVIVORS}::test_processors_normalise_with_imagenets_mean_and_std",
            f"{COLPONET}::test_processor_resizes_any_image_to_224_with_imagenet_normalisation",
        ),
    ),
    # Pre/post fusion (cervix_hf/models/prepost_fusion/): processor and model.
    Mutant(
        "prepost-normalisation-std-is-mean",
        "pre/post images are divided by ImageNet's mean instead of its standard deviation",
        "cervix_hf/models/prepost_fusion/image_processing_prepost_fusion.py",
        "image_std = IMAGENET_DEFAULT_STD",
        "image_std = IMAGENET_DEFAULT_MEAN",
        (
            f"{SURVIVORS}::test_processors_normalise_with_imagenets_mean_and_std",
            *PREPOST_FAST,
        ),
    ),
    Mutant(
        "prepost-threshold-itself-negative",
        "a probability equal to the threshold is Negative (documented: Positive)",
        "cervix_hf/models/prepost_fusion/image_processing_prepost_fusion.py",
        "PREPOST_LABELS[int(p >= threshold)]",
        "PREPOST_LABELS[int(p > threshold)]",
        (
            f"{SURVIVORS}::test_a_probability_equal_to_the_threshold_is_positive",
            *PREPOST_FAST,
            *FUSION_DECISIONS,
        ),
    ),
    Mutant(
        "prepost-post-stream-reads-pre-image",
        "the post-stain stream is fed the pre-stain image: the post-stain image is never read",
        "cervix_hf/models/prepost_fusion/modeling_prepost_fusion.py",
        "self._tokens(post_backbone, post_pixel_values, stream=1)",
        "self._tokens(post_backbone, pre_pixel_values, stream=1)",
        (*FUSION_DECISIONS, *PREPOST_FAST),
    ),
    Mutant(
        "prepost-cross-attention-backwards",
        "the pre-to-post attention takes post-stain queries and pre-stain keys",
        "cervix_hf/models/prepost_fusion/modeling_prepost_fusion.py",
        "self.pre_to_post(pre_tokens, post_tokens)",
        "self.pre_to_post(post_tokens, pre_tokens)",
        (
            f"{SURVIVORS}::test_pre_to_post_attention_has_a_row_per_pre_stain_position",
            *PREPOST_FAST,
            *FUSION_DECISIONS,
        ),
    ),
    # The quality gate (cervix_hf/models/colponet/image_quality.py, train/quality_filter.py).
    Mutant(
        "quality-laplacian-threshold-excluded",
        "a Laplacian variance equal to the threshold is rejected (documented: accepted)",
        "cervix_hf/models/colponet/image_quality.py",
        "if lap_var < laplacian_threshold:",
        "if lap_var <= laplacian_threshold:",
        (f"{SURVIVORS}::test_scores_at_the_thresholds_pass_the_gate", QUALITY),
    ),
    Mutant(
        "quality-laplacian-kernel-ksize-3",
        "the Laplacian uses OpenCV's ksize=3 kernel, not the 3x3 kernel of ksize=1 the thresholds were set with",
        "cervix_hf/models/colponet/image_quality.py",
        "return float(cv2.Laplacian(gray, cv2.CV_64F).var())",
        "return float(cv2.Laplacian(gray, cv2.CV_64F, ksize=3).var())",
        (QUALITY,),
    ),
    Mutant(
        "quality-upscales-small-photos",
        "small photos are upscaled to 500 px before scoring, which blurs them",
        "cervix_hf/models/colponet/image_quality.py",
        "side = min(resize_to, *gray.shape)",
        "side = resize_to",
        (f"{SURVIVORS}::test_a_small_photo_is_scored_at_its_own_size_with_the_band_scaled_to_it", QUALITY),
    ),
    Mutant(
        "quality-gray-from-bgr",
        "RGB photos are converted to grey as if they were BGR",
        "cervix_hf/models/colponet/image_quality.py",
        "cv2.COLOR_RGB2GRAY",
        "cv2.COLOR_BGR2GRAY",
        (f"{SURVIVORS}::test_the_working_image_weighs_red_green_and_blue_as_itu_r_601", QUALITY),
    ),
    Mutant(
        "quality-fft-band-not-scaled",
        "the FFT's low-frequency square keeps its 500-px size on smaller working images",
        "cervix_hf/models/colponet/image_quality.py",
        "low_freq_size = max(1, round(fft_low_freq_size * gray.shape[0] / resize_to))",
        "low_freq_size = fft_low_freq_size",
        (f"{SURVIVORS}::test_a_small_photo_is_scored_at_its_own_size_with_the_band_scaled_to_it", QUALITY),
    ),
    Mutant(
        "quality-filter-list-mode-drops",
        'mode="list" drops the rejected photos it should only list',
        "train/quality_filter.py",
        'if not is_rejected or mode == "list":',
        "if not is_rejected:",
        (QUALITY,),
    ),
    # Data readers (cervix_hf/data/).
    Mutant(
        "voc-not-one-based",
        "Pascal VOC's 1-based xmin/ymin are read as 0-based",
        "cervix_hf/data/detection.py",
        "_parse_box([xmin - 1, ymin - 1, xmax, ymax]",
        "_parse_box([xmin, ymin, xmax, ymax]",
        (DETECTION_DATA,),
    ),
    Mutant(
        "coco-reader-width-height-swapped",
        "a COCO bbox [x, y, width, height] is read with width and height swapped",
        "cervix_hf/data/detection.py",
        "box = (x, y, x + third, y + fourth) if last_is_size",
        "box = (x, y, x + fourth, y + third) if last_is_size",
        (DETECTION_DATA,),
    ),
    Mutant(
        "box-reader-xmin-ymin-swapped",
        "box readers take the first two numbers as (ymin, xmin)",
        "cervix_hf/data/detection.py",
        "x, y, third, fourth = (float(value) for value in values)",
        "y, x, third, fourth = (float(value) for value in values)",
        (DETECTION_DATA,),
    ),
    Mutant(
        "isbi-box-ends-at-last-pixel",
        "an ISBI nucleus box ends at its last pixel instead of that pixel's far edge",
        "cervix_hf/data/detection.py",
        "(float(x), float(y), float(x + width), float(y + height))",
        "(float(x), float(y), float(x + width - 1), float(y + height - 1))",
        (f"{SURVIVORS}::test_isbi_boxes_cover_their_regions_pixels", DETECTION_DATA),
    ),
    Mutant(
        "intel-additional-labels-off-by-one",
        "photos of the additional_Type_N_v2 folders are labelled one class too high",
        "cervix_hf/data/intel_mobileodt.py",
        "for label, name in enumerate(INTEL_MOBILEODT_LABELS):",
        "for label, name in enumerate(INTEL_MOBILEODT_LABELS, start=1):",
        (INTEL_DATA,),
    ),
    Mutant(
        "iarc-grade-folders-swapped",
        "IARC low-grade cases are labelled Positive and high-grade ones Negative",
        "cervix_hf/data/prepost.py",
        '{"images_low_grade": 0, "images_high_grade": 1}',
        '{"images_low_grade": 1, "images_high_grade": 0}',
        (PREPOST_DATA,),
    ),
    Mutant(
        "case-split-ignores-cases",
        "pairs of one patient may land in both the training and the test split",
        "cervix_hf/data/prepost.py",
        "seed=seed, groups=records.case_ids)",
        "seed=seed, groups=None)",
        (PREPOST_DATA,),
    ),
]


class MutantDoesNotApply(ValueError):
    pass


def mutated(mutant: Mutant, text: str) -> str:
    """`text` with the mutant's change; refuses when its original text is not there exactly once."""
    count = text.count(mutant.original)
    if count != 1:
        raise MutantDoesNotApply(
            f"mutant {mutant.name}: {mutant.path} holds its original text {count} times, not once: the code "
            f"changed, so update the mutant in {Path(__file__).name}. Original text: {mutant.original!r}"
        )
    return text.replace(mutant.original, mutant.replacement)


def apply(mutant: Mutant, tree: Path) -> str:
    """Writes the mutant into `tree` and returns the file's original text."""
    text = (tree / mutant.path).read_text(encoding="utf-8")
    _write_source(tree / mutant.path, mutated(mutant, text))
    return text


def _write_source(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    # A mutant may have the original's size and mtime second; never let Python reuse the other version's bytecode.
    for cached in path.parent.glob(f"__pycache__/{path.stem}.*.pyc"):
        cached.unlink()


def copy_working_tree(destination: Path) -> None:
    """The checkout's tracked and unignored files, as they are in the working tree (no .venv, .git or caches)."""
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for name in filter(None, listing.split("\0")):
        source = REPO / name
        if source.is_file():  # a tracked file deleted in the working tree stays deleted
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def use_tests_from(tree: Path, revision: str) -> None:
    archive = subprocess.run(["git", "archive", revision, "tests"], cwd=REPO, capture_output=True, check=True).stdout
    shutil.rmtree(tree / "tests")
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(tree, filter="data")


def sample_data_dir() -> Path:
    """Where the checkout's tests find the sample data, by the project's own rule (`cervix_hf/sample_data.py`, loaded
    alone so that this script does not import torch)."""
    spec = importlib.util.spec_from_file_location("sample_data", REPO / "cervix_hf" / "sample_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.sample_data_dir()


class Workspace:
    """A copy of the working tree in `root/repo`, with `root/shared/data` pointing at the sample data, so that tests
    that look for it beside the repository find it from the copy too."""

    def __init__(self, root: Path, tests_from: str | None):
        self.root = root
        self.tree = root / "repo"
        copy_working_tree(self.tree)
        if tests_from:
            use_tests_from(self.tree, tests_from)
        data = sample_data_dir()
        if data.is_dir():
            (root / "shared").mkdir()
            (root / "shared" / "data").symlink_to(data, target_is_directory=True)

    def pytest(self, selectors: list[str], timeout: float, *options: str) -> tuple[int | None, str]:
        """(exit code, or None on timeout; output) of pytest on `selectors` in the copy."""
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(self.tree), os.environ.get("PYTHONPATH")])))
        command = [sys.executable, *PYTEST, *options, f"--basetemp={self.root / 'pytest'}", *selectors]
        process = subprocess.Popen(
            command,
            cwd=self.tree,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # so that a timeout also ends the processes the tests started
        )
        try:
            output, _ = process.communicate(timeout=timeout)
            return process.returncode, output
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
            return None, output


@dataclass
class Result:
    mutant: Mutant
    killed: bool
    seconds: float
    detail: str


@dataclass
class Baseline:
    """What the unmutated run left out: test files absent from the suite or that cannot be collected, and the
    tests that fail without any mutant."""

    missing_files: set[str]
    broken_files: set[str]
    failing_tests: set[str]

    def tests_for(self, selectors: list[str]) -> list[str]:
        """`selectors` without the left-out files and failing tests, then `--deselect` for the failing tests of the
        files that stay."""
        kept = [s for s in selectors if file_of(s) not in self.missing_files | self.broken_files]
        kept = [s for s in kept if s not in self.failing_tests]
        if not kept:
            return []
        files = {file_of(s) for s in kept}
        return [f"--deselect={test}" for test in sorted(self.failing_tests) if file_of(test) in files] + kept


def file_of(selector: str) -> str:
    return selector.split("::")[0]


def first_failure(output: str) -> str:
    """The first failed test in pytest's short summary, else the last line of its output."""
    failed = re.search(r"^(?:FAILED|ERROR) (.+?)(?: - .*)?$", output, flags=re.MULTILINE)
    lines = [line for line in output.splitlines() if line.strip()]
    return failed.group(1) if failed else lines[-1] if lines else "no output"


def run_mutant(mutant: Mutant, tests: list[str], workspaces: queue.Queue, timeout: float) -> Result:
    if not tests:
        return Result(mutant, False, 0.0, "no test to run: its tests are missing or fail unmutated")
    workspace = workspaces.get()
    start = time.monotonic()
    try:
        original = apply(mutant, workspace.tree)
        try:
            code, output = workspace.pytest(tests, timeout, "-x")
        finally:
            _write_source(workspace.tree / mutant.path, original)
    finally:
        workspaces.put(workspace)
    seconds = time.monotonic() - start
    if code is None:
        return Result(mutant, True, seconds, f"timed out after {timeout:g} s")
    if code in (PYTEST_OK, PYTEST_NO_TESTS):
        ran = "every test passed" if code == PYTEST_OK else "no test ran"
        return Result(mutant, False, seconds, f"{ran}: {' '.join(tests)}")
    return Result(mutant, True, seconds, first_failure(output))


def unmutated_run(workspaces: list[Workspace], selectors: list[str], timeout: float) -> Baseline:
    """Runs the unmutated tests, shared between the workspaces, and reads from pytest's JUnit report what failed."""
    missing = {file_of(s) for s in selectors if not (workspaces[0].tree / file_of(s)).is_file()}
    present = [s for s in selectors if file_of(s) not in missing]
    shares = [(workspace, present[index :: len(workspaces)]) for index, workspace in enumerate(workspaces)]
    shares = [(workspace, share) for workspace, share in shares if share]

    def run(job: tuple[Workspace, list[str]]) -> tuple[int | None, str, Path]:
        workspace, share = job
        report = workspace.root / "unmutated.xml"
        code, output = workspace.pytest(share, timeout, "--continue-on-collection-errors", f"--junitxml={report}")
        return code, output, report

    baseline = Baseline(missing, set(), set())
    with ThreadPoolExecutor(len(workspaces)) as pool:
        for code, output, report in pool.map(run, shares):
            if code not in (PYTEST_OK, PYTEST_TESTS_FAILED):
                raise SystemExit(
                    f"The unmutated tests could not run (pytest exit {'timeout' if code is None else code}), so "
                    f"there is nothing to measure. The end of pytest's output:\n{output[-3000:]}"
                )
            _read_failures(report, workspaces[0].tree, baseline)
    return baseline


def _read_failures(report: Path, tree: Path, baseline: Baseline) -> None:
    for case in ElementTree.parse(report).iter("testcase"):
        if case.find("failure") is None and case.find("error") is None:
            continue
        if not case.get("classname"):  # a module that could not be collected: `name` is its dotted path
            baseline.broken_files.add(case.get("name").replace(".", "/") + ".py")
            continue
        parts = case.get("classname").split(".")  # the module's dotted path, then any test classes
        cut = next(i for i in range(len(parts), 0, -1) if (tree / ("/".join(parts[:i]) + ".py")).is_file())
        baseline.failing_tests.add("::".join(["/".join(parts[:cut]) + ".py", *parts[cut:], case.get("name")]))


def selectors_of(mutant: Mutant, whole_files: bool) -> list[str]:
    """The mutant's pytest selectors, or the files they name (an older suite may lack today's node ids)."""
    if not whole_files:
        return list(mutant.tests)
    return list(dict.fromkeys(file_of(selector) for selector in mutant.tests))


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these mutants")
    parser.add_argument("--list", action="store_true", help="list the mutants, with their tests, and exit")
    parser.add_argument("--jobs", type=int, default=2, help="mutants run at once, each in its own copy (default: 2)")
    parser.add_argument(
        "--tests-from", metavar="REV", help="run the tests of this git revision (whole files) against today's code"
    )
    parser.add_argument(
        "--timeout", type=float, default=300, help="seconds a mutant's tests may run; a timeout kills it (default: 300)"
    )
    return parser


def main(args: argparse.Namespace) -> int:
    mutants = MUTANTS
    if args.only:
        unknown = sorted(set(args.only) - {mutant.name for mutant in MUTANTS})
        if unknown:
            raise SystemExit(f"Unknown mutant(s) {unknown}; --list names them.")
        mutants = [mutant for mutant in MUTANTS if mutant.name in args.only]
    if args.list:
        for mutant in mutants:
            print(f"{mutant.name}  ({mutant.path})\n    {mutant.bug}\n    tests: {' '.join(mutant.tests)}")
        return 0
    try:  # before copying anything: every mutant must apply to today's code
        for mutant in mutants:
            mutated(mutant, (REPO / mutant.path).read_text(encoding="utf-8"))
    except MutantDoesNotApply as error:
        raise SystemExit(str(error)) from None

    start, cpu_start = time.monotonic(), _children_cpu_seconds()
    whole_files = args.tests_from is not None
    suite = f"the tests of {args.tests_from}" if whole_files else "the working tree's tests"
    jobs = max(1, min(args.jobs, len(mutants)))
    with tempfile.TemporaryDirectory(prefix="mutation-check-") as temporary:
        workspaces = [Workspace(Path(temporary) / f"job{index}", args.tests_from) for index in range(jobs)]
        selectors = list(dict.fromkeys(s for mutant in mutants for s in selectors_of(mutant, whole_files)))
        whole = {s for s in selectors if "::" not in s}
        selectors = [s for s in selectors if "::" not in s or file_of(s) not in whole]  # each test once
        print(f"Unmutated run of {suite} ({len(selectors)} selectors, {jobs} job(s))...", flush=True)
        baseline = unmutated_run(workspaces, selectors, UNMUTATED_TIMEOUT)
        left_out = [f"{name} (not in {suite})" for name in sorted(baseline.missing_files)]
        left_out += [f"{name} (cannot be collected)" for name in sorted(baseline.broken_files)]
        left_out += [f"{name} (fails unmutated)" for name in sorted(baseline.failing_tests)]
        for name in left_out:
            print(f"  left out: {name}")
        print(f"Unmutated run: {time.monotonic() - start:.0f} s. Mutants:", flush=True)

        free = queue.Queue()
        for workspace in workspaces:
            free.put(workspace)
        with ThreadPoolExecutor(jobs) as pool:
            futures = [
                pool.submit(
                    run_mutant, mutant, baseline.tests_for(selectors_of(mutant, whole_files)), free, args.timeout
                )
                for mutant in mutants
            ]
            results = []
            for future in futures:  # in the list's order, as they finish
                results.append(future.result())
                verdict = "KILLED  " if results[-1].killed else "SURVIVED"
                print(
                    f"{verdict} {results[-1].seconds:6.1f} s  {results[-1].mutant.name}: {results[-1].detail}",
                    flush=True,
                )

    killed = sum(result.killed for result in results)
    rate = killed / len(results)
    print(
        f"\nKilled {killed} of {len(results)} mutants ({rate:.1%}) with {suite}; the target is "
        f"{TARGET_KILL_RATE:.0%}. {time.monotonic() - start:.0f} s with {jobs} job(s), "
        f"{_children_cpu_seconds() - cpu_start:.0f} s of CPU in the test runs."
    )
    if left_out:
        print(f"Left out of the measurement: {'; '.join(left_out)}.")
    for result in results:
        if not result.killed:
            print(f"  survivor {result.mutant.name} ({result.mutant.path}): {result.mutant.bug}")
    return 0 if rate >= TARGET_KILL_RATE else 1


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
