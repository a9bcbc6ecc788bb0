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

from cervix_hf.commands import DefaultsHelpFormatter
from cervix_hf.io.files import PRECISIONS


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=DefaultsHelpFormatter)
    parser.add_argument("--model", required=True, type=Path, help="a saved model folder (the export goes into it)")
    parser.add_argument("--precision", default="int8", choices=PRECISIONS, help="int8 needs --calibration")
    parser.add_argument("--calibration", type=Path, help="real images: a photo folder, or pre/post pairs")
    parser.add_argument("--max-images", default=64, type=int, help="images used, half to calibrate, half to check")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    # Imported when the command runs, so that --help answers without torch.
    from cervix_hf.export.calibration import calibration_items
    from cervix_hf.export.classifiers import ExportError
    from cervix_hf.hub import ModelReferenceError, resolve_model_reference
    from cervix_hf.prediction.inference import load_config
    from cervix_hf.prediction.loader import load
    from cervix_hf.registry import FAMILIES, family

    try:  # the export is written into the folder, so it must be a local one
        resolve_model_reference(str(args.model), local_only=True)
    except ModelReferenceError as error:
        print(f"error: --model {error}", file=sys.stderr)
        return 2
    model_type = load_config(str(args.model)).model_type
    exportable = [record.model_type for record in FAMILIES if record.engine.exportable(record)]
    if model_type not in exportable:
        print(
            f"error: a {model_type!r} model cannot be exported; exportable: {', '.join(exportable)}.", file=sys.stderr
        )
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
    record = family(model_type)
    loaded = load(str(args.model), "torch")
    model, processor = loaded.model, loaded.processor
    items = calibration_items(model_type, args.calibration, processor, args.max_images)
    if len(items) < 2:
        found = f"found {len(items)} usable input(s) in {args.calibration}"
        print(f"error: {found}; at least 2 are needed.", file=sys.stderr)
        return 2
    try:
        report = record.engine.export(model, processor, args.model, args.precision, items)
    except ExportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print("\n".join(record.engine.export_summary(report, args.model, args.precision)))
    if "openvino" not in report:
        print(
            "OpenVINO is not installed, so ONNX Runtime serves the export (pip install openvino for the faster "
            "engine, then export again to check it)."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
