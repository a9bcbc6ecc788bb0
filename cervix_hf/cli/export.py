"""Export a saved model (any of the three) to ONNX (fp32, or int8 calibrated on real images).

    cervix-hf export --model checkpoints/colponet --precision int8 --calibration DATA
    python -m cervix_hf.export --model checkpoints/prepost_fusion --precision int8 --calibration ATLAS_OR_PAIRS_CSV
    cervix-hf export --model checkpoints/cell_detector --precision int8 --calibration ../shared/data/isbi2014-edf

`--calibration` is data of the kind the model sees: for ColpoNet a folder of photos (searched recursively; only
photos its quality gate accepts are used), for the cell classifier a folder of cell images (e.g. the Herlev folder), for the fusion model the IARC atlas layout or a pairs CSV, for the
detector an ISBI 2014 or SIPaKMeD folder (labelled: the check scores mAP@.5 against its boxes) or any folder of
images (the check scores against PyTorch's own detections). Half of the images chosen calibrate the int8 ranges,
the other half check the export against PyTorch; the export is kept only if it agrees (`cervix_hf.export.classifiers`,
`cervix_hf.export.detector`). The files go into the model folder's `onnx/` subfolder, so `push-to-hub` publishes them
with the weights.

The same `.onnx` files serve both engines: ONNX Runtime, and OpenVINO, which reads ONNX directly (so there is no
separate OpenVINO format to export). Where OpenVINO is installed the export is checked under it too, and the
loaders' and the app's `runtime="auto"` run it by OpenVINO only if that check passed.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

from cervix_hf.cli import DefaultsHelpFormatter
from cervix_hf.data import (
    IMAGE_EXTENSIONS,
    guess_detection_format,
    read_iarc_atlas,
    read_isbi2014_edf,
    read_pairs_csv,
    read_sipakmed,
)
from cervix_hf.export.classifiers import EXPORTABLE, PRECISIONS, ExportError, export_onnx, onnx_path
from cervix_hf.export.detector import export_detector_onnx
from cervix_hf.hub import ModelReferenceError, resolve_model_reference
from cervix_hf.io.images import ImageLoadError
from cervix_hf.prediction.inference import load_model_input, load_pretrained
from cervix_hf.registry import family

EXPORTABLE_TYPES = (*EXPORTABLE, "cell_detector")


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=DefaultsHelpFormatter)
    parser.add_argument("--model", required=True, type=Path, help="a saved model folder (the export goes into it)")
    parser.add_argument("--precision", default="int8", choices=PRECISIONS, help="int8 needs --calibration")
    parser.add_argument("--calibration", type=Path, help="real images: a photo folder, or pre/post pairs")
    parser.add_argument("--max-images", default=64, type=int, help="images used, half to calibrate, half to check")
    return parser


def detection_items(data: Path, limit: int) -> list[tuple]:
    """Up to `limit` (image, target) pairs from `data`, evenly spread: targets from an ISBI 2014 or SIPaKMeD
    layout's boxes, `None` for a plain folder of images."""
    data_format = guess_detection_format(data)
    if data_format is None:
        candidates = [(path, None) for path in sorted(data.rglob("*")) if path.suffix.lower() in IMAGE_EXTENSIONS]
    else:
        records = read_isbi2014_edf(data) if data_format == "isbi2014" else read_sipakmed(data)
        candidates = [
            (
                record.image_path,
                {
                    "boxes": np.asarray(record.boxes, dtype=np.float32).reshape(-1, 4),
                    "labels": np.asarray(record.labels, dtype=np.int64),
                },
            )
            for record in records.records
        ]
    items = []
    for path, target in candidates[:: max(1, len(candidates) // max(1, limit))][:limit]:
        try:
            image = load_model_input(path, "cell_detector", reduce=False)
        except ImageLoadError:
            continue
        items.append((image, target))
    return items


def calibration_items(model_type: str, data: Path, processor, limit: int) -> list:
    """Up to `limit` real inputs from `data`, evenly spread over it: photos the quality gate accepts, pairs, or
    (image, target) pairs for the detector."""
    if model_type == "cell_detector":
        return detection_items(data, limit)
    if model_type == "prepost_fusion":
        records = read_pairs_csv(data) if data.suffix.lower() == ".csv" else read_iarc_atlas(data)
        candidates = [(record.pre_path, record.post_path) for record in records.records]
    else:
        candidates = sorted(path for path in data.rglob("*") if path.suffix.lower() in IMAGE_EXTENSIONS)
    step = max(1, len(candidates) // max(1, limit))
    items = []
    for candidate in candidates[::step]:
        try:
            if model_type == "prepost_fusion":
                item = tuple(load_model_input(view, model_type) for view in candidate)
            else:
                item = load_model_input(candidate, model_type)
                if hasattr(processor, "assess_quality") and not processor.assess_quality(item)[0].is_acceptable:
                    continue  # the model never sees photos its quality gate rejects
        except ImageLoadError:
            continue
        items.append(item)
        if len(items) == limit:
            break
    return items


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    try:  # the export is written into the folder, so it must be a local one
        resolve_model_reference(str(args.model), local_only=True)
    except ModelReferenceError as error:
        print(f"error: --model {error}", file=sys.stderr)
        return 2
    from transformers import AutoConfig

    model_type = AutoConfig.from_pretrained(args.model).model_type
    if model_type not in EXPORTABLE_TYPES:
        exportable = ", ".join(EXPORTABLE_TYPES)
        print(f"error: a {model_type!r} model cannot be exported; exportable: {exportable}.", file=sys.stderr)
        return 2
    if args.calibration is None:
        print(
            "error: --calibration DATA is needed: real images of the kind the model sees (a folder of photos, "
            "pre/post pairs, or Pap-smear fields), to check the export against PyTorch and to calibrate int8.",
            file=sys.stderr,
        )
        return 2
    if not args.calibration.exists():
        print(f"error: --calibration {args.calibration}: no such file or folder.", file=sys.stderr)
        return 2
    model, processor = load_pretrained(str(args.model), auto_class=family(model_type).task_auto_class)
    items = calibration_items(model_type, args.calibration, processor, args.max_images)
    if len(items) < 2:
        found = f"found {len(items)} usable input(s) in {args.calibration}"
        print(f"error: {found}; at least 2 are needed.", file=sys.stderr)
        return 2
    try:
        if model_type == "cell_detector":
            calibration = [image for image, _ in items[0::2]]
            report = export_detector_onnx(model, processor, args.model, args.precision, calibration, items[1::2])
        else:
            report = export_onnx(model, processor, args.model, args.precision, items[0::2], items[1::2])
    except ExportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if model_type == "cell_detector":
        print(
            f"{onnx_path(args.model, args.precision).parent}: the detector's backbone, RPN head and box head in "
            f"{args.precision}, checked on {report['check_images']} real image(s): mAP@.5 {report['export_map_50']:.4f} "
            f"against PyTorch's {report['pytorch_map_50']:.4f} (scored against {report['scored_against']}); exported "
            f"in {report['export_seconds']} s."
        )
        if "openvino" in report:
            print(f"Run by OpenVINO: mAP@.5 {report['openvino']['export_map_50']:.4f}; {_verdict(report)}")
    else:
        print(
            f"{onnx_path(args.model, args.precision)}: {args.precision}, checked on {report['check_images']} real "
            f"input(s): top-1 agreement {report['top1_agreement']:.3f}, largest probability difference "
            f"{report['max_probability_difference']:.4f}; exported in {report['export_seconds']} s."
        )
        if "error" in report.get("openvino", {}):
            print(f"OpenVINO cannot run this export ({report['openvino']['error']}), so ONNX Runtime serves it.")
        elif "openvino" in report:
            check = report["openvino"]
            print(
                f"Run by OpenVINO: top-1 agreement {check['top1_agreement']:.3f}, largest probability difference "
                f"{check['max_probability_difference']:.4f}; {_verdict(report)}"
            )
    if "openvino" not in report:
        print(
            "OpenVINO is not installed, so ONNX Runtime serves the export (pip install openvino for the faster "
            "engine, then export again to check it)."
        )
    return 0


def _verdict(report: dict) -> str:
    if report["openvino"]["accepted"]:
        return "OpenVINO serves the export by default (runtime auto)."
    return "outside the bounds, so ONNX Runtime serves the export by default."


if __name__ == "__main__":
    sys.exit(main())
