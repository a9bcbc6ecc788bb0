"""cervix_hf's Gradio app: cervix type, cell detection and pre/post fusion. Research demo, never a diagnosis.

    cervix-hf app [--colponet DIR_OR_HUB_ID] [--cell-detector ...] [--prepost-fusion ...] [--examples DIR]
                  [--checkpoints-dir DIR] [--host 127.0.0.1] [--port 7860]

`python app.py` in a checkout or a Space (the Space's entry point) and `python -m cervix_hf.app` run the same
app. One module per tab (`cervix_type_tab`, `cell_detection_tab`, `prepost_fusion_tab`, `cell_classifier_tab`,
`batch_tab`, `models_tab`), what they share in `inputs`, `cache`, `exports` and `widgets`, where the models come
from in `models`, the command line in `arguments`, the page in `main`.

Each model comes from, in this order: its flag or environment variable (`CERVIX_HF_COLPONET`,
`CERVIX_HF_CELL_DETECTOR`, `CERVIX_HF_PREPOST_FUSION`; a saved folder or a Hub id `owner/name[@revision]`); the
training script's folder `checkpoints/<model_type>/`; the published Hub repo (`cervix_hf.hub`). Where none loads,
its tab runs the default configuration with untrained weights and every result says "UNTRAINED MODEL: output is
meaningless", and its answers are greyed out and called random; the start-up log says how to get real weights.
Example images come from `--examples` / `CERVIX_HF_EXAMPLES`, else `examples/` in the current folder (a Space's),
else the project's sample data (see `cervix_hf.data.examples`). Models load on first use; nothing is downloaded to
render the page.
"""

import importlib

from cervix_hf.app.arguments import get_args_parser

__all__ = ["LAUNCH_SETTINGS", "build_demo", "get_args_parser", "main"]


def __getattr__(name: str):
    """The page and its server (`cervix_hf.app.main`, which imports gradio and torch), on first use."""
    if name in ("LAUNCH_SETTINGS", "build_demo", "main"):
        value = getattr(importlib.import_module("cervix_hf.app.main"), name)
        # Importing the submodule `main` binds its name here; the function of that name is what this package exports.
        globals()[name] = value
        return value
    raise AttributeError(f"module 'cervix_hf.app' has no attribute {name!r}")
