"""The page: the banner and the tabs, the queue, and the command line that serves it."""

import logging
import os
import socket
import threading
from pathlib import Path

import gradio as gr

from cervix_hf.app.arguments import EXAMPLES_ENV_VAR, get_args_parser
from cervix_hf.app.batch_tab import build_batch_tab
from cervix_hf.app.exports import ExportFolders
from cervix_hf.app.gradio_patches import write_drawn_images_atomically
from cervix_hf.app.models import TASKS, AppModels, requested_models
from cervix_hf.app.models_tab import build_models_tab
from cervix_hf.app.uploads import CheckedBlocks
from cervix_hf.app.widgets import APP_CSS
from cervix_hf.data.examples import AppExamples, default_examples, default_examples_dirs, find_examples
from cervix_hf.hub import ModelReferenceError
from cervix_hf.prediction.inference import ModelLoadError
from cervix_hf.registry import FAMILIES, resolve

logger = logging.getLogger("cervix_hf.app")
BANNER = (
    "# cervix_hf: cervical-cancer image models\n"
    "⚠️ **Research demo, not a diagnosis.** These models were trained on small public research datasets. No output "
    "of this app is a clinical finding, and none of it is approved for clinical use: never use it to decide on a "
    "patient's care."
)
# Requests each event runs at once; more wait in the queue. Inference uses every CPU core, so more would only
# share them.
CONCURRENCY_LIMIT = 2
QUEUE_SIZE = 64
# What `launch` needs besides the address: a cap on uploads, the page rendered in the browser (no Node server), and
# the page's style (an untrained model's results greyed out).
LAUNCH_SETTINGS = {"max_file_size": "100mb", "ssr_mode": False, "css": APP_CSS}


def build_demo(models: AppModels | None = None, examples_dir: str | Path | None = None) -> gr.Blocks:
    """
    The app. `models` defaults to the environment variables' models, then `checkpoints/` in the current folder, then
    the Hub; `examples_dir` as [`app_examples`] says. Nothing is loaded until a request needs it.
    """
    models = models or AppModels.from_settings(requested_models({}))
    examples = app_examples(examples_dir)
    exports = ExportFolders()
    write_drawn_images_atomically()
    # Every event checks its inputs before a file is read: only the request's own uploads (`uploads.py`).
    with CheckedBlocks(
        title="cervix_hf: research demo, not a diagnosis", analytics_enabled=False, delete_cache=(3600, 3600)
    ) as demo:
        gr.Markdown(BANNER)
        for record in FAMILIES:  # one tab per model, as its record names it
            tab_examples = getattr(examples, record.app_examples) if record.app_examples else []
            resolve(record.app_tab_ref)(models[record.model_type], tab_examples, exports)
        build_batch_tab(models, exports)
        build_models_tab(models)
    return demo.queue(default_concurrency_limit=CONCURRENCY_LIMIT, max_size=QUEUE_SIZE)


def app_examples(examples_dir: str | Path | None = None) -> AppExamples:
    """
    The app's example images, found in `examples_dir`, else `$CERVIX_HF_EXAMPLES`, else the first folder of
    `examples/` in the current folder and the project's sample data where there are any
    (`cervix_hf.data.examples.default_examples_dirs`). A folder given that does not exist gives no examples. The log
    says which folder they came from.
    """
    folder = examples_dir or os.environ.get(EXAMPLES_ENV_VAR)
    if folder:
        examples = find_examples(folder)
    else:
        folder, examples = default_examples()
    if folder is None:
        searched = ", ".join(str(path) for path in default_examples_dirs())
        logger.info("No example images: none given (--examples, $%s) and none found in %s.", EXAMPLES_ENV_VAR, searched)
        return examples
    logger.info(
        "Examples from %s: %d photo(s), %d Pap-smear image(s), %d pre/post pair(s).",
        folder,
        len(examples.cervix_type),
        len(examples.cells),
        len(examples.prepost),
    )
    return examples


def main(argv: list[str] | None = None) -> None:
    parser = get_args_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # gradio's own start-up requests
    host = args.host or os.environ.get("GRADIO_SERVER_NAME") or "127.0.0.1"
    port = args.port or (int(os.environ["GRADIO_SERVER_PORT"]) if os.environ.get("GRADIO_SERVER_PORT") else None)
    if port is not None and not _port_is_free(host, port):
        parser.exit(
            2,
            f"error: port {port} on {host} is in use (by another app?): choose another with "
            "--port (or GRADIO_SERVER_PORT), or leave both unset for the first free one from 7860.\n",
        )
    try:
        models = AppModels.from_settings(
            requested_models({task.name: getattr(args, task.name) for task in TASKS}),
            checkpoints_dir=args.checkpoints_dir,
            runtime=args.runtime,
        )
        models.load_requested()
    except (ModelReferenceError, ModelLoadError) as error:
        parser.exit(2, f"error: {error}\n")
    models.log_plan()
    if args.warm_up:  # in the background: the page is served at once, the first request finds its model ready
        threading.Thread(target=models.warm_up, name="warm-up", daemon=True).start()
    examples_dir = args.examples or os.environ.get(EXAMPLES_ENV_VAR)
    if examples_dir and not Path(examples_dir).is_dir():
        logger.warning("The examples folder %s does not exist: the app starts without examples.", examples_dir)
    demo = build_demo(models, examples_dir)
    demo.launch(server_name=args.host, server_port=args.port, **LAUNCH_SETTINGS)


def _port_is_free(host: str, port: int) -> bool:
    """Whether `host:port` can be listened on now (gradio would otherwise fail after the models started loading)."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does: TIME_WAIT is free
            probe.bind((host, port))
        return True
    except OSError:
        return False


if __name__ == "__main__":
    main()
