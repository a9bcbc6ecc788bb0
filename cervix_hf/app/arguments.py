"""The app's command line (`cervix-hf app`, `python app.py`): its flags, and the folders and variables they default to.
Imports nothing heavy, so that `--help` answers without gradio or torch."""

import argparse
from pathlib import Path

from cervix_hf.commands import DefaultsHelpFormatter
from cervix_hf.registry import FAMILIES, RUNTIMES
from cervix_hf.sample_data import SAMPLE_DATA_ENV

EXAMPLES_ENV_VAR = "CERVIX_HF_EXAMPLES"
DEFAULT_CHECKPOINTS_DIR = Path("checkpoints")
RELEASE_DIR_ENV = "CERVIX_HF_RELEASE_DIR"
DESCRIPTION = (
    "Serve cervix_hf's Gradio app (cervix type, Pap cells, pre/post fusion, batch). Research demo, never a diagnosis."
)


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=DESCRIPTION, formatter_class=DefaultsHelpFormatter)
    for record in FAMILIES:
        parser.add_argument(
            record.flag,
            *record.alias_flags,
            metavar="DIR_OR_HUB_ID",
            dest=record.model_type,
            help=f"{record.title}: a saved folder (it must load) or owner/name[@revision] (default: ${record.env_var}, "
            f"then CHECKPOINTS_DIR/{record.checkpoint_folder}, then release/{record.checkpoint_folder} (${RELEASE_DIR_ENV} "
            "names another release folder), then the published Hub repo, else untrained)",
        )
    parser.add_argument(
        "--examples",
        metavar="DIR",
        help=f"folder of example images (default: ${EXAMPLES_ENV_VAR}, else the first of ./examples (a Space's, as "
        f"push-space stages it) and the project's sample data (${SAMPLE_DATA_ENV}, else ../shared/data beside the "
        "checkout) that holds any; else none)",
    )
    parser.add_argument(
        "--checkpoints-dir",
        default=str(DEFAULT_CHECKPOINTS_DIR),
        help="folder of the training commands' models, one <task> folder each (relative to the current folder)",
    )
    parser.add_argument(
        "--runtime",
        default="auto",
        choices=RUNTIMES,
        help="auto: a model folder's export (cervix-hf export) runs its predictions when it has one, by OpenVINO "
        "where it is installed and passed the export's check, else ONNX Runtime; onnx, openvino: by that engine",
    )
    parser.add_argument(
        "--no-warm-up",
        dest="warm_up",
        action="store_false",
        help="load each model on its first request instead of in the background at start-up",
    )
    parser.add_argument("--host", help="address to listen on (default: $GRADIO_SERVER_NAME, else 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: $GRADIO_SERVER_PORT, else 7860 or the next free one)")
    return parser
