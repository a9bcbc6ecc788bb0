"""The Batch tab: many images (or a zip) through one model, with progress, a results table and a CSV download.

The same engine as `cervix-hf predict` (`cervix_hf.prediction.batch`): the same rows, one per photo, cell or pair, and a file
that cannot be read recorded as a row with its error while the rest go on. A request is checked whole before any
image is decoded, from the request and the zips' directories and the images' headers: files, zip entries, unpacked
bytes, images and pixels (counted by content, whatever a file's name says), each reference to the same upload
counted. Nothing is extracted: each image is read from its upload or its zip entry when its turn comes, within the
same bounds as the tabs (the model's `input_max_side`, `MAX_DECODED_PIXELS`), and the only file a request writes is
its CSV, removed again when the request fails.
"""

import copy
import csv
import io
import posixpath
import shutil
import warnings
import zipfile
import zlib
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
from PIL import Image

from cervix_hf.app.exports import ExportFolders
from cervix_hf.app.inputs import MAX_DECODED_PIXELS, bad_input, checked_choice, safe_upload_name
from cervix_hf.app.models import AppModels
from cervix_hf.app.uploads import MAX_REQUEST_FILES
from cervix_hf.app.widgets import result_label
from cervix_hf.io.images import ImageLoadError
from cervix_hf.prediction.batch import PAIR_COLUMNS, BatchInput, Predictor, RowWriter, chunks
from cervix_hf.registry import FAMILIES, family

MAX_BATCH_FILES = MAX_REQUEST_FILES  # images a request, each reference counted
MAX_BATCH_PIXELS = 1_000_000_000  # about 80 photos of 12 MP, or 950 Pap-smear fields of 1024 px
MAX_BATCH_BYTES = 2_000_000_000  # a request's files unpacked, each reference counted
MAX_ZIP_ENTRIES = 1_000  # entries of a request's zips, folders included, each reference counted
MAX_FILE_BYTES = 100_000_000  # one file unpacked: what one upload may be (the app's max_file_size)
MAX_PAIRS_CSV_BYTES = 1_000_000
# The formats the tabs take, as Pillow names them from a file's content (MPO: a camera's JPEG with a preview).
FORMATS = {"JPEG": "JPEG", "MPO": "JPEG", "PNG": "PNG", "TIFF": "TIFF", "BMP": "BMP"}
FORMAT_NAMES = "JPEG, PNG, TIFF or BMP"
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
CHUNK = 8
# What each choice runs on: the model's task name, and what its inputs are.
CHOICES = {record.batch_choice: record.model_type for record in FAMILIES}
SHOWN_ROWS = 500


@dataclass
class Member:
    """One file of a request, by the name its rows show: an upload, or an entry of an uploaded zip."""

    name: str
    upload: Path
    entry: zipfile.ZipInfo | None = None
    archive: zipfile.ZipFile | None = None
    problem: str | None = None  # why it will not be predicted (its row's error), found from its header

    @property
    def size(self) -> int:
        return self.entry.file_size if self.entry is not None else self.upload.stat().st_size


class RequestFiles:
    """
    A request's files, read where they are (an upload, a zip entry), never copied: [`plan`] checks every limit
    from the request, the zips' directories and the images' headers; [`open`] then gives the predictor one file's
    bytes at a time, with the zip's checksum and declared size checked.
    """

    def __init__(self, stack: ExitStack):
        self._stack = stack
        self.members: dict[str, Member] = {}
        self.entries = self.bytes = 0

    # Planning: nothing is written, nothing is decoded.

    def add_upload(self, upload: dict, number: int) -> None:
        source = Path(upload["path"])  # a file of this request's uploads: `uploads.CheckedBlocks` checked it
        given = upload.get("orig_name") if isinstance(upload.get("orig_name"), str) else None
        name = safe_upload_name(given or source.name)
        if name in self.members or any(key.startswith(f"{Path(name).stem}/") for key in self.members):
            name = f"{number}_{name}"  # two uploads of one name: both kept
        if zipfile.is_zipfile(source):
            self._add_zip(source, name)
        else:
            self._count_bytes(name, source.stat().st_size)
            self.members[name] = Member(name, source)

    def _add_zip(self, source: Path, shown: str) -> None:
        try:
            declared = _declared_entries(source)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
            raise bad_input(f"{shown} is not a zip that can be read ({error}); make it again.") from None
        if self.entries + declared > MAX_ZIP_ENTRIES:
            raise bad_input(
                f"{shown} holds {declared:,} entries: at most {MAX_ZIP_ENTRIES:,} in all a request "
                "(each reference to the same zip counted); send fewer files."
            )
        try:
            archive = self._stack.enter_context(zipfile.ZipFile(source))
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
            raise bad_input(f"{shown} is not a zip that can be read ({error}); make it again.") from None
        self.entries += declared
        folder = Path(shown).stem
        for entry in archive.infolist():
            if entry.is_dir() or entry.filename.startswith("__MACOSX/"):  # macOS Finder's resource forks
                continue
            inner = posixpath.normpath(entry.filename.replace("\\", "/"))
            if entry.filename.startswith(("/", "\\")) or inner == ".." or inner.startswith("../"):
                raise bad_input(f"{shown} holds a file outside its own folder ({entry.filename[:100]!r}).")
            if inner.lower().endswith(".zip"):
                raise bad_input(f"{shown} holds another zip ({inner[:100]}): put its images in the outer zip itself.")
            if entry.flag_bits & 0x1:
                raise bad_input(f"{shown} holds an encrypted file ({inner[:100]}): send it without a password.")
            name = f"{folder}/{inner}"
            self._count_bytes(name, entry.file_size)
            self.members[name] = Member(name, source, entry, archive)

    def _count_bytes(self, name: str, size: int) -> None:
        if size > MAX_FILE_BYTES:
            raise bad_input(f"{name} is {size:,} bytes unpacked: at most {MAX_FILE_BYTES:,} per file.")
        self.bytes += size
        if self.bytes > MAX_BATCH_BYTES:
            raise bad_input(
                f"The files of this request unpack to more than {MAX_BATCH_BYTES:,} bytes (each reference "
                "to the same upload counted): send fewer images."
            )

    def inputs(self, model_type: str) -> list[BatchInput]:
        """What to predict: every file but the pairs lists; for the fusion model, the pairs its lists name."""
        lists = [member for name, member in self.members.items() if posixpath.basename(name).lower() == "pairs.csv"]
        if family(model_type).input_columns != PAIR_COLUMNS:
            return [BatchInput((name,)) for name, member in self.members.items() if member not in lists]
        if not lists:
            raise bad_input(
                "The fusion model takes pairs: send a zip holding pairs.csv (columns pre, post) and the "
                "images it names."
            )
        return [pair for member in lists for pair in self._pairs(member)]

    def _pairs(self, listing: Member) -> list[BatchInput]:
        if listing.size > MAX_PAIRS_CSV_BYTES:
            raise bad_input(
                f"{listing.name} is {listing.size:,} bytes: a pairs list of at most "
                f"{MAX_PAIRS_CSV_BYTES:,} bytes, please."
            )
        text = self.read(listing).decode("utf-8-sig", errors="replace")
        rows = list(csv.reader(io.StringIO(text)))
        header = [column.strip().lower() for column in rows[0]] if rows else []
        if "pre" not in header or "post" not in header:
            raise bad_input(f"{listing.name}: a pairs list needs the columns 'pre' and 'post' (found {header[:10]}).")
        columns = header.index("pre"), header.index("post")
        folder = posixpath.dirname(listing.name)
        pairs = []
        for line, fields in enumerate(rows[1:], start=2):
            if not any(field.strip() for field in fields):
                continue
            if len(fields) <= max(columns) or not all(fields[i].strip() for i in columns):
                raise bad_input(f"{listing.name}, line {line}: a row needs both a pre and a post image.")
            names = []
            for i in columns:
                given = fields[i].strip().replace("\\", "/")
                name = posixpath.normpath(posixpath.join(folder, given))
                if given.startswith("/") or name not in self.members:
                    raise bad_input(
                        f"{listing.name}, line {line} names {given[:100]!r}, which is not in the zip: "
                        "name the zip's own images."
                    )
                names.append(name)
            pairs.append(BatchInput(tuple(names)))
        return pairs

    def check_images(self, items: list[BatchInput]) -> None:
        """Counts the images and their pixels from their headers (by content, not by name), each reference
        counted, and refuses the request above the limits, or when it holds nested zips or no image at all."""
        names = [name for item in items for name in item.paths]
        if len(names) > MAX_BATCH_FILES:
            raise bad_input(
                f"{len(names)} images: at most {MAX_BATCH_FILES} per batch here; use `cervix-hf predict` for more."
            )
        pixels, images = 0, 0
        for name in names:
            member = self.members[name]
            size, is_image = self._header(member)
            pixels += size
            images += is_image and member.problem is None
            if pixels > MAX_BATCH_PIXELS:
                raise bad_input(
                    f"More than {MAX_BATCH_PIXELS:,} pixels in all (counted from the images' content): "
                    "send fewer or smaller images, or use `cervix-hf predict`."
                )
        if not images:
            raise bad_input(
                f"No image in this request: none of its files ({len(names)}) is a {FORMAT_NAMES} image "
                "by its content. Send photos, or a zip of them."
            )

    def _header(self, member: Member) -> tuple[int, bool]:
        """The image's pixels from its header, and whether it is an image; records why a file that is no image of the tabs' formats will get
        an error row instead. Refuses a zip inside the request's zips (by content)."""
        try:
            with self._stream(member) as stream:
                if stream.read(4) in ZIP_MAGIC:
                    raise bad_input(f"{member.name} is a zip inside a zip: put its images in the outer zip itself.")
                stream.seek(0)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                    with Image.open(stream) as image:
                        kind, size = image.format, image.width * image.height
        except gr.Error:
            raise
        except Exception:  # not an image, or damaged: its row says why, with the reader's own message
            return 0, False
        if kind not in FORMATS:
            member.problem = f"{kind} is not a format this tab takes: send {FORMAT_NAMES} images."
        return size, True

    # Reading, one file at a time.

    def _stream(self, member: Member):
        return member.upload.open("rb") if member.entry is None else member.archive.open(member.entry)

    def read(self, member: Member) -> bytes:
        """The member's bytes; a zip entry whose content does not match its checksum or its declared size is an
        `ImageLoadError` that says which."""
        if member.entry is None:
            return member.upload.read_bytes()
        entry = member.entry
        try:
            with member.archive.open(entry) as stream:
                data = stream.read(entry.file_size + 1)
        except (zipfile.BadZipFile, EOFError, zlib.error, OSError):
            data = None
        if data is not None and len(data) == entry.file_size:
            return data
        held = self._size_held(member)
        if held > entry.file_size:
            problem = (
                f"the zip's directory says it holds {entry.file_size:,} bytes, but it holds more: the zip is "
                "forged or damaged; make it again."
            )
        elif held < entry.file_size:
            problem = (
                f"the zip's directory says it holds {entry.file_size:,} bytes, but its data ends after "
                f"{held:,}: the zip is cut short or damaged; make it again."
            )
        else:
            problem = "its content does not match its checksum (CRC-32) in the zip: the zip is damaged; make it again."
        raise ImageLoadError(member.name, problem)

    @staticmethod
    def _size_held(member: Member) -> int:
        """How many bytes the entry's data holds, up to one more than it declares (its checksum not checked)."""
        probe = copy.copy(member.entry)
        del probe.CRC  # zipfile checks the checksum only where the entry has one
        probe.file_size = member.entry.file_size + 1
        held = 0
        try:
            with member.archive.open(probe) as stream:
                while held <= member.entry.file_size and (block := stream.read(1 << 20)):
                    held += len(block)
        except (zipfile.BadZipFile, EOFError, zlib.error, OSError):
            pass
        return held

    def open(self, name: str) -> io.BytesIO:
        """The file `name` as the predictor reads it: its bytes, named as the rows name it."""
        member = self.members[name]
        if member.problem:
            raise ImageLoadError(name, member.problem)
        data = io.BytesIO(self.read(member))
        data.name = name
        return data


def _declared_entries(source: Path) -> int:
    """The number of entries a zip's end record declares, read before its directory is parsed."""
    with source.open("rb") as handle:
        record = zipfile._EndRecData(handle)  # the standard library's reader of the end record (and its zip64 form)
    if not record:
        raise zipfile.BadZipFile("no end-of-directory record")
    return record[zipfile._ECD_ENTRIES_TOTAL]


def build_batch_tab(models: AppModels, exports: ExportFolders) -> None:
    def run_batch(choice, uploads, progress=gr.Progress()):
        model_type = CHOICES[checked_choice(choice, list(CHOICES), "model")]
        if not uploads:
            raise bad_input("Add images, or a zip of them, first.")
        with ExitStack() as stack:
            files = RequestFiles(stack)
            for number, upload in enumerate(uploads):
                files.add_upload(upload, number)
            items = files.inputs(model_type)
            files.check_images(items)
            loaded = models[model_type].get()
            predictor = Predictor(
                model_type,
                loaded.predictor,
                loaded.processor,
                max_decoded_pixels=MAX_DECODED_PIXELS,
                open_input=files.open,
            )
            rows, done = [], 0
            progress((0, len(items)), desc="predicting", unit="inputs")
            for chunk in chunks(items, CHUNK):
                rows += predictor(chunk)
                done += len(chunk)
                progress((done, len(items)), desc="predicting", unit="inputs")
        folder = exports.new()
        try:
            csv_path = folder / f"{model_type}_predictions{'_UNTRAINED_MODEL' if loaded.warning else ''}.csv"
            with csv_path.open("w", newline="", encoding="utf-8") as handle:
                RowWriter(handle, "csv", predictor.columns).write(rows)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        failed = sum(1 for row in rows if row.get("error") and row.get("row", "image") == "image")
        summary = (
            f"**{len(items)} input(s)**, {failed} could not be read; {len(rows)} row(s). "
            f"Model: {loaded.source.shown()}. Research demo, not a diagnosis."
        )
        if loaded.warning:
            summary = f"## ⚠️ {loaded.warning}\n\n" + summary
        table = {
            "headers": [
                result_label(column, loaded) if column.startswith(("probability", "score")) else column
                for column in predictor.columns
            ],
            "data": [[row[column] for column in predictor.columns] for row in rows[:SHOWN_ROWS]],
        }
        return summary, table, str(csv_path)

    with gr.Tab("Batch"):
        gr.Markdown(
            f"Many images at once, through one model: up to {MAX_BATCH_FILES} images or a zip of them, "
            f"{MAX_BATCH_PIXELS // 1_000_000:,} megapixels in all; one row per photo, cell or pair, as "
            f"`cervix-hf predict` writes them. A file that cannot be read, or is not a {FORMAT_NAMES} image, gets a "
            "row with its error."
        )
        with gr.Row():
            with gr.Column():
                choice = gr.Radio(list(CHOICES), value=next(iter(CHOICES)), label="Model", elem_id="batch-model")
                uploads = gr.File(file_count="multiple", label="Images, or a zip", elem_id="batch-files")
                button = gr.Button("Predict all", variant="primary")
            with gr.Column():
                summary = gr.Markdown("Add images and press *Predict all*.", label="Summary")
                table = gr.Dataframe(
                    label="Results (the first 500 rows; all in the CSV)", interactive=False, elem_id="batch-table"
                )
                csv_file = gr.File(label="All results (CSV)", elem_id="batch-csv")
    # One batch at a time, whoever sends it: a batch uses every core for minutes; more wait in the queue.
    button.click(
        run_batch,
        [choice, uploads],
        [summary, table, csv_file],
        api_name="predict_batch",
        preprocess=False,
        concurrency_limit=1,
    )
