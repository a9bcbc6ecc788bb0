"""The Batch tab: many images (or a zip) through one model, with progress, a results table and a CSV download.

The same engine as `cervix-hf predict` (`cervix_hf.batch`): the same rows, one per photo, cell or pair, and a file
that cannot be read recorded as a row with its error while the rest go on. A request is bounded in files and in
total pixels, so one upload cannot hold the Space's two cores for long or fill its memory.
"""

import zipfile
from pathlib import Path

import gradio as gr
from PIL import Image

from ..batch import Predictor, RowWriter, chunks, find_inputs
from ..data import IMAGE_EXTENSIONS
from .models import AppModels
from .widgets import ExportFolders, bad_input, checked_choice, result_label, safe_upload_name

MAX_BATCH_FILES = 200
MAX_BATCH_PIXELS = 1_000_000_000  # about 80 photos of 12 MP, or 950 Pap-smear fields of 1024 px
MAX_ZIP_BYTES = 2_000_000_000  # uncompressed
CHUNK = 8
# What each choice runs on: the model's task name, and what its inputs are.
CHOICES = {
    "Cervix type (photos)": "colponet",
    "Cell detection (Pap-smear images)": "cell_detector",
    "Pre/post fusion (a zip with pairs.csv: columns pre, post)": "prepost_fusion",
}
SHOWN_ROWS = 500


def _extract(archive: Path, folder: Path) -> None:
    """Extracts a zip into `folder`, refusing names that lead outside it and archives too large when unpacked."""
    with zipfile.ZipFile(archive) as opened:
        members = opened.infolist()
        if sum(member.file_size for member in members) > MAX_ZIP_BYTES:
            raise bad_input(f"{archive.name} unpacks to more than {MAX_ZIP_BYTES:,} bytes: send fewer images.")
        for member in members:
            target = (folder / member.filename).resolve()
            if not target.is_relative_to(folder.resolve()):
                raise bad_input(f"{archive.name} holds a file outside its own folder ({member.filename!r}).")
        opened.extractall(folder)


def _pixels(path: Path) -> int:
    """The image's pixels from its header (nothing decoded); 0 for a file that is not an image (it fails later)."""
    try:
        with Image.open(path) as image:
            return image.width * image.height
    except Exception:  # an unreadable file becomes an error row, with the reader's own message
        return 0


def build_batch_tab(models: AppModels, exports: ExportFolders) -> None:
    def run_batch(choice, uploads, progress=gr.Progress()):
        model_type = CHOICES[checked_choice(choice, list(CHOICES), "model")]
        if not uploads:
            raise bad_input("Add images, or a zip of them, first.")
        folder = exports.new()
        inputs = folder / "inputs"
        inputs.mkdir()
        for number, upload in enumerate(uploads):
            source = Path(upload["path"] if isinstance(upload, dict) else upload)
            given = (upload.get("orig_name") if isinstance(upload, dict) else None) or source.name
            name = safe_upload_name(given)
            if (inputs / name).exists() or (inputs / Path(name).stem).exists():  # two uploads of one name: both kept
                name = f"{number}_{name}"
            if zipfile.is_zipfile(source):
                _extract(source, inputs / Path(name).stem)
            else:
                (inputs / name).write_bytes(source.read_bytes())
        if model_type == "prepost_fusion":
            lists = sorted(inputs.rglob("pairs.csv"))
            if not lists:
                raise bad_input("The fusion model takes pairs: send a zip holding pairs.csv (columns pre, post) and "
                                "the images it names.")  # fmt: skip
            items = find_inputs([str(path) for path in lists], model_type)
        else:
            items = find_inputs([str(inputs)], model_type)
        images = [Path(path) for item in items for path in item.paths]
        outside = [path for path in images if not path.resolve().is_relative_to(inputs.resolve())]
        if outside:  # a pairs.csv naming files of this server
            raise bad_input(f"pairs.csv names {outside[0].name}, which is not in the zip: name the zip's own images.")
        if len(images) > MAX_BATCH_FILES:
            raise bad_input(f"{len(images)} images: at most {MAX_BATCH_FILES} per batch here; use `cervix-hf "
                            "predict` for more.")  # fmt: skip
        pixels = sum(_pixels(path) for path in images if path.suffix.lower() in IMAGE_EXTENSIONS)
        if pixels > MAX_BATCH_PIXELS:
            raise bad_input(f"{pixels:,} pixels in all: at most {MAX_BATCH_PIXELS:,} per batch here; send fewer "
                            "or smaller images, or use `cervix-hf predict`.")  # fmt: skip
        loaded = models[model_type].get()
        predictor = Predictor(model_type, loaded.predictor, loaded.processor)
        rows, done = [], 0
        progress((0, len(items)), desc="predicting", unit="inputs")
        for chunk in chunks(items, CHUNK):
            rows += predictor(chunk)
            done += len(chunk)
            progress((done, len(items)), desc="predicting", unit="inputs")
        where = f"{inputs.resolve()}/"
        for row in rows:  # names as the user knows them, not this server's folders
            for column in ("image", "pre", "post"):
                if row.get(column):
                    row[column] = Path(row[column]).resolve().relative_to(inputs.resolve()).as_posix()
            if row.get("error"):
                row["error"] = row["error"].replace(where, "").replace(f"{inputs}/", "")
        csv_path = folder / f"{model_type}_predictions{'_UNTRAINED_MODEL' if loaded.warning else ''}.csv"
        with csv_path.open("w", newline="", encoding="utf-8") as handle:
            RowWriter(handle, "csv", predictor.columns).write(rows)
        failed = sum(1 for row in rows if row.get("error") and row.get("row", "image") == "image")
        summary = (f"**{len(items)} input(s)**, {failed} could not be read; {len(rows)} row(s). "
                   f"Model: {loaded.source.describe()}. Research demo, not a diagnosis.")  # fmt: skip
        if loaded.warning:
            summary = f"## ⚠️ {loaded.warning}\n\n" + summary
        table = {
            "headers": [result_label(column, loaded) if column.startswith(("probability", "score")) else column
                        for column in predictor.columns],  # fmt: skip
            "data": [[row[column] for column in predictor.columns] for row in rows[:SHOWN_ROWS]],
        }
        return summary, table, str(csv_path)

    with gr.Tab("Batch"):
        gr.Markdown(
            f"Many images at once, through one model: up to {MAX_BATCH_FILES} images or a zip of them, "
            f"{MAX_BATCH_PIXELS // 1_000_000:,} megapixels in all; one row per photo, cell or pair, as "
            "`cervix-hf predict` writes them. A file that cannot be read gets a row with its error."
        )
        with gr.Row():
            with gr.Column():
                choice = gr.Radio(list(CHOICES), value=next(iter(CHOICES)), label="Model", elem_id="batch-model")
                uploads = gr.File(file_count="multiple", label="Images, or a zip", elem_id="batch-files")
                button = gr.Button("Predict all", variant="primary")
            with gr.Column():
                summary = gr.Markdown("Add images and press *Predict all*.")
                table = gr.Dataframe(label="Results (the first 500 rows; all in the CSV)", interactive=False,
                                     elem_id="batch-table")  # fmt: skip
                csv_file = gr.File(label="All results (CSV)", elem_id="batch-csv")
    button.click(run_batch, [choice, uploads], [summary, table, csv_file], api_name="predict_batch",
                 preprocess=False)  # fmt: skip
