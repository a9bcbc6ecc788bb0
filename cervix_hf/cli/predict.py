"""Classify colposcopy photos with a saved ColpoNet from the command line.

    python -m cervix_hf.predict --model checkpoints/colponet photo1.jpg photo2.jpg [--json]

Each photo first goes through the quality gate; a rejected (blurry) photo is not classified unless
`--ignore-quality-gate` is given. Research demo, not a diagnosis.
"""

import argparse
import json
import sys

from . import DefaultsHelpFormatter
from ..image_io import ImageLoadError
from ..inference import DISCLAIMER, classify_cervix_type, load_classifier


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=DefaultsHelpFormatter)
    parser.add_argument("images", nargs="+", help="photo files")
    parser.add_argument("--model", required=True, help="saved model folder or Hub repo id")
    parser.add_argument("--revision", help="Hub revision (branch, tag or commit)")
    parser.add_argument("--ignore-quality-gate", action="store_true", help="classify rejected photos too")
    parser.add_argument("--json", action="store_true", help="one JSON object per photo")
    parser.add_argument(
        "--runtime",
        default="auto",
        choices=("auto", "torch", "onnx"),
        help="auto: the model folder's ONNX export (cervix-hf export) when it has one, else PyTorch",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    try:
        model, processor = load_classifier(args.model, args.revision, runtime=args.runtime)
    except (OSError, ValueError, ImportError) as err:
        print(f"error: cannot load the model {args.model!r}: {err}", file=sys.stderr)
        return 2
    runtime = f"onnx ({model.path.name})" if hasattr(model, "session") else "torch"
    print(f"runtime: {runtime}", file=sys.stderr)
    if not args.json:
        print(DISCLAIMER)
    failures = 0
    for path in args.images:
        try:
            prediction = classify_cervix_type(model, processor, path, args.ignore_quality_gate)
        except ImageLoadError as err:
            failures += 1
            print(json.dumps({"image": path, "error": str(err)}) if args.json else f"{path}: ERROR {err}")
            continue
        if args.json:
            print(json.dumps({"image": path, **prediction.to_dict()}))
        elif prediction.classified:
            probabilities = ", ".join(f"{name} {p:.3f}" for name, p in prediction.probabilities.items())
            print(f"{path}: {prediction.label} ({probabilities}). {prediction.quality.message}")
        else:
            print(f"{path}: not classified. {prediction.quality.message}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
