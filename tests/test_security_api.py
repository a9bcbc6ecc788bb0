"""The running app attacked as an outsider would: raw HTTP requests to gradio's API (no gradio_client), for every
endpoint and every file input, with payloads built by hand.

- No file outside the app's uploads is ever opened or served, whatever the payload names (a path outside, a path
  under the uploads that leaves them by `..`, a symlink in the uploads, `/proc/self/environ`, a file of this
  repository), with or without gradio's `"meta"` key, through the public API names and through the page's own
  numbered events; and the answer is the same whether that path exists or not.
- The Batch tab refuses a request over its limits before it writes anything, and says why in its own words
  (nested zips, damaged or lying zips, no images); unsupported files get an error row.
- Answers name a model, never the server's folder it was loaded from.
"""

import io
import json
import os
import sys
import threading
import uuid
import zipfile
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from cervix_hf.app.models import TASKS_BY_NAME, AppModels

from .conftest import launch_app

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[1]
UPLOADS = Path(os.environ["GRADIO_TEMP_DIR"])  # conftest gives this process its own gradio folder
NOT_UPLOADED = "this file was not uploaded to this app. Upload it again."
META = {"_type": "gradio.FileData"}

# Every public endpoint with a file input: its values with a file payload `F` in each file input's place.
FILE_ENDPOINTS = {
    "classify_cervix_type": lambda f, good: [f, False],
    "cervix_grad_cam": lambda f, good: [f, False, 0.0],
    "detect_cells": lambda f, good: [f, 0.0],
    "annotated_cells": lambda f, good: [f, 0.0],
    "classify_prepost (pre-stain)": lambda f, good: [f, good, "custom threshold", 0.5, 0.0],
    "classify_prepost (post-stain)": lambda f, good: [good, f, "custom threshold", 0.5, 0.0],
    "predict_batch (photos)": lambda f, good: ["Cervix type (photos)", [f]],
    "predict_batch (cells)": lambda f, good: ["Cell detection (Pap-smear images)", [good, f]],
    "predict_batch (pairs)": lambda f, good: ["Pre/post fusion (a zip with pairs.csv: columns pre, post)", [f]],
}


class Opens:
    """Every file this process opens while `watching` (Python's audit events: `open`, `os.open`)."""

    def __init__(self):
        self.watching, self.paths, self._lock = False, [], threading.Lock()
        sys.addaudithook(self._hook)

    def _hook(self, event, args):
        if self.watching and event in ("open", "os.open") and isinstance(args[0], (str, bytes, os.PathLike)):
            with self._lock:
                self.paths.append(os.fsdecode(args[0]))

    def during(self, action):
        self.paths, self.watching = [], True
        try:
            return action()
        finally:
            self.watching = False


OPENS = Opens()


def save_tiny(task_name: str, folder: Path) -> Path:
    model, processor = TASKS_BY_NAME[task_name].build_untrained("tiny")
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def model_folders(tmp_path_factory) -> dict[str, Path]:
    """The app's three models (tiny, random weights) saved in folders whose names are not the server's paths."""
    root = tmp_path_factory.mktemp("private-models")
    return {task: save_tiny(task, root / f"{task}-run-7") for task in ("colponet", "cell_detector", "prepost_fusion")}


@pytest.fixture(scope="module")
def app_url(model_folders, tmp_path_factory):
    from cervix_hf import app

    models = AppModels.from_settings(
        {task: str(folder) for task, folder in model_folders.items()},
        checkpoints_dir=tmp_path_factory.mktemp("none"),
        untrained_size="tiny",
    )
    demo = launch_app(app.build_demo(models, tmp_path_factory.mktemp("no-examples")))
    yield demo.local_url.rstrip("/")
    demo.close()


def call(url: str, api_name: str, data: list) -> tuple[str, object]:
    """POSTs `data` to /gradio_api/call/<api_name> and reads the server-sent events: ("complete", outputs) or
    ("error", the message shown)."""
    started = httpx.post(f"{url}/gradio_api/call/{api_name}", json={"data": data}, timeout=60)
    assert started.status_code == 200, started.text
    event_id = started.json()["event_id"]
    text = httpx.get(f"{url}/gradio_api/call/{api_name}/{event_id}", timeout=300).text
    events = [block for block in text.split("\n\n") if block.startswith("event:")]
    kind, _, data_line = events[-1].partition("\n")
    kind = kind.removeprefix("event:").strip()
    payload = json.loads(data_line.removeprefix("data:").strip())
    if kind == "error" and isinstance(payload, dict):  # {"error": message, "title": ..., "duration": ...}
        payload = payload.get("error")
    return kind, payload


def call_by_number(url: str, fn_index: int, data: list) -> tuple[str, object]:
    """Runs event number `fn_index` through the queue, as the page does (the events without an API name too)."""
    session = uuid.uuid4().hex
    joined = httpx.post(
        f"{url}/gradio_api/queue/join",
        json={"data": data, "fn_index": fn_index, "session_hash": session, "event_data": None, "trigger_id": None},
        timeout=60,
    )
    assert joined.status_code == 200, joined.text
    with httpx.stream("GET", f"{url}/gradio_api/queue/data", params={"session_hash": session}, timeout=300) as stream:
        for line in stream.iter_lines():
            if line.startswith("data:"):
                message = json.loads(line.removeprefix("data:"))
                if message.get("msg") == "process_completed":
                    output = message.get("output", {})
                    return (
                        ("complete", output.get("data")) if message.get("success") else ("error", output.get("error"))
                    )
    raise AssertionError("the queue closed without an answer")


def upload(url: str, path: Path) -> dict:
    """The file uploaded as the page uploads it: its payload, with gradio's meta."""
    with path.open("rb") as handle:
        answer = httpx.post(f"{url}/gradio_api/upload", files={"files": (path.name, handle)}, timeout=60)
    assert answer.status_code == 200, answer.text
    return {"path": answer.json()[0], "orig_name": path.name, "meta": META}


def photo(path: Path, size=(320, 240), seed=0) -> Path:
    pixels = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture(scope="module")
def secret(tmp_path_factory) -> Path:
    """A private image on the server, outside the uploads: it must never be read."""
    return photo(tmp_path_factory.mktemp("private") / "patient_0042.png", seed=42)


@pytest.fixture(scope="module")
def good(app_url, tmp_path_factory) -> dict:
    return upload(app_url, photo(tmp_path_factory.mktemp("mine") / "mine.png", seed=1))


def hostile_paths(secret: Path, good: dict) -> dict[str, str]:
    """Paths an attacker would try, each outside the uploads once resolved."""
    link_folder = UPLOADS / "planted"
    link_folder.mkdir(exist_ok=True)
    link = link_folder / "link.png"
    if not link.is_symlink():
        link.symlink_to(secret)
    climb = "/".join([".."] * len(Path(good["path"]).parent.parts))
    return {
        "a private image": str(secret),
        "a missing file": str(secret.with_name("no_such_patient.png")),
        "a folder": str(secret.parent),
        "the uploads left by ..": f"{Path(good['path']).parent}/{climb}{secret}",
        "a symlink in the uploads": str(link),
        "/proc/self/environ": "/proc/self/environ",
        "a file of the repository": str(REPO_ROOT / "app.py"),
        "a relative path": "README.md",
        "the upload folder itself": str(UPLOADS),
    }


@pytest.mark.parametrize("with_meta", [True, False], ids=["with meta", "without meta"])
@pytest.mark.parametrize("endpoint", FILE_ENDPOINTS)
def test_no_endpoint_reads_a_file_that_was_not_uploaded(app_url, secret, good, endpoint, with_meta):
    api_name = endpoint.split(" ")[0]
    targets = {Path(secret).resolve(), (REPO_ROOT / "app.py").resolve(), Path("/proc/self/environ")}
    answers = {}
    for what, path in hostile_paths(secret, good).items():
        payload = {"path": path, "orig_name": "photo.png", **({"meta": META} if with_meta else {})}
        kind, message = OPENS.during(lambda: call(app_url, api_name, FILE_ENDPOINTS[endpoint](payload, good)))
        opened = {Path(p).resolve() for p in OPENS.paths if not p.startswith("/proc/self/fd")}
        assert not opened & targets, f"{endpoint} opened {opened & targets} for {what}"
        assert kind == "error", f"{endpoint} answered for {what}: {str(message)[:200]}"
        answers[what] = message
    # One answer whatever the path: nothing tells whether it exists, is a folder or an image.
    assert len(set(answers.values())) == 1, answers
    message = next(iter(answers.values()))
    assert message.endswith(NOT_UPLOADED) and str(secret.parent) not in message


def test_every_event_of_the_page_checks_its_file_inputs(app_url, secret, good):
    """The page calls its events by number, those without an API name too (a new photo, a moved slider)."""
    config = httpx.get(f"{app_url}/config", timeout=30).json()
    components = {component["id"]: component for component in config["components"]}
    defaults = {"image": None, "checkbox": False, "slider": 0.5, "file": None}
    checked = 0
    for fn_index, dependency in enumerate(config["dependencies"]):
        kinds = [components[i]["type"] for i in dependency["inputs"]]
        if not dependency.get("backend_fn") or not {"image", "file"} & set(kinds):
            continue
        for position, kind in enumerate(kinds):
            if kind not in ("image", "file"):
                continue
            data = []
            for i, other in zip(dependency["inputs"], kinds):
                props = components[i].get("props", {})
                value = props.get("value") if other == "radio" else defaults.get(other)
                data.append(good if other == "image" else [good] if other == "file" else value)
            payload = {"path": str(secret), "meta": META}
            data[position] = [payload] if kind == "file" else payload
            kind_of_answer, message = OPENS.during(lambda: call_by_number(app_url, fn_index, data))
            assert secret.resolve() not in {Path(p).resolve() for p in OPENS.paths}
            assert kind_of_answer == "error" and message.endswith(NOT_UPLOADED), (fn_index, message)
            checked += 1
    assert checked >= 10  # every tab's change, input and button events


def test_an_upload_is_still_read_and_the_annotated_image_is_the_upload_itself(app_url, tmp_path):
    image = photo(tmp_path / "field.png", size=(400, 300), seed=3)
    kind, outputs = call(app_url, "annotated_cells", [upload(app_url, image), 0.99])
    assert kind == "complete", outputs
    served = httpx.get(outputs[0]["url"], timeout=30)
    assert served.status_code == 200
    assert np.asarray(Image.open(io.BytesIO(served.content)).convert("RGB")).shape == (300, 400, 3)


WRONG_TYPES = {
    "a text instead of a file": (
        "classify_cervix_type",
        ["/etc/hostname", False],
        "Colposcopy photo: expected an uploaded file",
    ),
    "a number instead of a file": ("detect_cells", [7, 0.5], "Pap-smear image: expected an uploaded file"),
    "a file without a path": (
        "classify_cervix_type",
        [{"url": "http://example.com/a.png", "meta": META}, False],
        "Colposcopy photo: expected an uploaded file",
    ),
    "one file instead of a list": (
        "predict_batch",
        ["Cervix type (photos)", {"path": "x", "meta": META}],
        "Images, or a zip: expected a list of uploaded files",
    ),
    "no checkbox value": ("classify_cervix_type", [None], "missing 'Classify even if the quality gate rejects"),
    "no opacity": ("cervix_grad_cam", [None, False], "missing 'Heat-map opacity'"),
}


@pytest.mark.parametrize("case", WRONG_TYPES)
def test_a_value_of_the_wrong_kind_or_missing_is_named(app_url, case):
    api_name, data, expected = WRONG_TYPES[case]
    kind, message = call(app_url, api_name, data)
    assert kind == "error" and message and expected in message, message


def test_an_upload_without_meta_is_refused_and_said_so(app_url, good):
    kind, message = call(app_url, "classify_cervix_type", [{"path": good["path"]}, False])
    assert kind == "error" and message.startswith("Colposcopy photo: send the file as gradio's upload returns it")


def test_answers_and_the_models_tab_name_the_model_not_the_servers_folder(app_url, model_folders, good):
    answers = [
        call(app_url, "classify_cervix_type", [good, True]),
        call(app_url, "detect_cells", [good, 0.5]),
        call(app_url, "models", []),
    ]
    for kind, outputs in answers:
        assert kind == "complete", outputs
        text = json.dumps(outputs)
        assert not any(str(folder) in text for folder in model_folders.values()), text[:500]
        assert str(model_folders["colponet"].parent) not in text and "local folder" not in text
    assert answers[0][1][2]["model"] == "local model 'colponet-run-7'"
    assert "**Loaded from:** local model 'cell_detector-run-7'" in answers[2][1][1]


# The Batch tab: limits before anything is written.


def written(app_url) -> tuple[int, int]:
    """Files and bytes under this process's gradio folder and the app's download folders."""
    import tempfile

    roots = [UPLOADS, *Path(tempfile.gettempdir()).glob(f"cervix_hf_app_{os.getpid()}_*")]
    files = [p for root in roots for p in root.rglob("*") if p.is_file() and not p.is_symlink()]
    return len(files), sum(p.stat().st_size for p in files)


def zip_of(path: Path, entries: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return path


def png_bytes(size=(64, 48), seed=0, mode="RGB") -> bytes:
    buffer = io.BytesIO()
    if mode == "RGB":
        Image.fromarray(np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(
            buffer, "PNG"
        )
    else:
        Image.new(mode, size).save(buffer, "PNG")
    return buffer.getvalue()


def refused_without_writing(app_url, data, expected: str):
    before = written(app_url)
    kind, message = call(app_url, "predict_batch", data)
    assert kind == "error" and expected in (message or ""), message
    assert written(app_url) == before, "the refused request wrote files"
    return message


PHOTOS = "Cervix type (photos)"
PAIRS = "Pre/post fusion (a zip with pairs.csv: columns pre, post)"


def test_a_zip_of_too_many_entries_is_refused_from_its_directory(app_url, tmp_path):
    archive = zip_of(tmp_path / "many.zip", {f"empty_{i}.jpg": b"" for i in range(1_001)}, zipfile.ZIP_STORED)
    refused_without_writing(
        app_url, [PHOTOS, [upload(app_url, archive)]], "many.zip holds 1,001 entries: at most 1,000"
    )


def test_references_to_one_upload_are_counted(app_url, tmp_path, monkeypatch):
    from cervix_hf.app import batch_tab

    archive = zip_of(tmp_path / "zeros.zip", {f"zeros_{i}.png": bytes(4_000_000) for i in range(1)})
    once = upload(app_url, archive)
    refused_without_writing(app_url, [PHOTOS, [once] * 201], "201 files in one request; at most 200")
    monkeypatch.setattr(batch_tab, "MAX_BATCH_BYTES", 10_000_000)  # the app runs in this process
    refused_without_writing(app_url, [PHOTOS, [once] * 3], "unpack to more than 10,000,000 bytes")
    image = upload(app_url, photo(tmp_path / "small.png", seed=5))
    refused_without_writing(app_url, [PHOTOS, [image] * 11 + [once] * 2], "unpack to more than 10,000,000 bytes")


def test_more_images_than_the_bound_in_a_zip_are_refused_before_extraction(app_url, tmp_path):
    archive = zip_of(tmp_path / "two_hundred_and_one.zip", {f"{i}.png": png_bytes((32, 32), i) for i in range(201)})
    refused_without_writing(app_url, [PHOTOS, [upload(app_url, archive)]], "201 images: at most 200 per batch")


def test_pixels_are_counted_by_content_not_by_name(app_url, tmp_path, monkeypatch):
    from cervix_hf.app import batch_tab

    monkeypatch.setattr(batch_tab, "MAX_BATCH_PIXELS", 50_000)
    big = png_bytes((200, 200), mode="L")  # 40,000 pixels each, in files that do not say they are images
    archive = zip_of(tmp_path / "renamed.zip", {"a.dat": big, "b.dat": big, "pairs.csv": b"pre,post\na.dat,b.dat\n"})
    refused_without_writing(app_url, [PAIRS, [upload(app_url, archive)]], "More than 50,000 pixels in all")
    plain = [upload(app_url, tmp_path / name) for name in ("c.dat", "d.bin") if (tmp_path / name).write_bytes(big)]
    refused_without_writing(app_url, [PHOTOS, plain], "More than 50,000 pixels in all")


def test_a_zip_inside_a_zip_is_refused_with_its_own_message(app_url, tmp_path):
    inner = zip_of(tmp_path / "inner.zip", {"a.png": png_bytes()}).read_bytes()
    by_name = zip_of(tmp_path / "by_name.zip", {"ok.png": png_bytes(), "more/inner.zip": inner})
    refused_without_writing(app_url, [PHOTOS, [upload(app_url, by_name)]], "holds another zip (more/inner.zip)")
    by_content = zip_of(tmp_path / "by_content.zip", {"ok.png": png_bytes(), "photo.jpg": inner})
    refused_without_writing(
        app_url, [PHOTOS, [upload(app_url, by_content)]], "by_content/photo.jpg is a zip inside a zip"
    )


def test_a_request_without_any_image_is_said_so(app_url, tmp_path):
    archive = zip_of(tmp_path / "notes.zip", {"notes.txt": b"no image here", "scan.jpg": b"not a jpeg either"})
    refused_without_writing(app_url, [PHOTOS, [upload(app_url, archive)]], "No image in this request")


def forged(tmp_path: Path, name: str, declared: int | None = None, crc: int | None = None) -> Path:
    """A zip of one PNG and one good photo whose PNG entry's central-directory size or CRC is overwritten."""
    data = png_bytes((80, 60), seed=9)
    path = zip_of(tmp_path / name, {"good.png": png_bytes(seed=2), "field.png": data})
    raw = bytearray(path.read_bytes())
    central = raw.index(b"PK\x01\x02", raw.index(b"PK\x01\x02") + 4)  # field.png's directory record
    if crc is not None:
        raw[central + 16 : central + 20] = crc.to_bytes(4, "little")
    if declared is not None:
        raw[central + 24 : central + 28] = declared.to_bytes(4, "little")
    path.write_bytes(bytes(raw))
    return path


@pytest.mark.parametrize(
    "case, expected",
    [
        ("bad CRC", "its content does not match its checksum (CRC-32)"),
        ("size said smaller", "but it holds more"),
        ("size said larger", "but its data ends after"),
    ],
)
def test_a_damaged_or_lying_zip_entry_gets_an_error_row_of_its_own(app_url, tmp_path, case, expected):
    size = len(png_bytes((80, 60), seed=9))
    archive = {
        "bad CRC": lambda: forged(tmp_path, "crc.zip", crc=0x12345678),
        "size said smaller": lambda: forged(tmp_path, "smaller.zip", declared=size - 100),
        "size said larger": lambda: forged(tmp_path, "larger.zip", declared=size + 5_000),
    }[case]()
    kind, outputs = call(app_url, "predict_batch", [PHOTOS, [upload(app_url, archive)]])
    assert kind == "complete", outputs
    rows = {row[0]: dict(zip(outputs[1]["headers"], row)) for row in outputs[1]["data"]}
    stem = archive.stem
    assert rows[f"{stem}/good.png"]["status"] in ("classified", "rejected by the quality gate")
    assert rows[f"{stem}/field.png"]["status"] == "error" and expected in rows[f"{stem}/field.png"]["error"]


def test_unsupported_files_beside_photos_get_error_rows(app_url, tmp_path):
    buffers = {}
    for kind in ("GIF", "WEBP"):
        buffer = io.BytesIO()
        Image.new("RGB", (64, 48), (200, 30, 30)).save(buffer, kind)
        buffers[kind] = buffer.getvalue()
    archive = zip_of(
        tmp_path / "mixed.zip", {"a.jpg": png_bytes(seed=4), "b.gif": buffers["GIF"], "c.webp": buffers["WEBP"]}
    )
    kind, outputs = call(app_url, "predict_batch", [PHOTOS, [upload(app_url, archive)]])
    assert kind == "complete", outputs
    rows = {row[0]: dict(zip(outputs[1]["headers"], row)) for row in outputs[1]["data"]}
    assert set(rows) == {"mixed/a.jpg", "mixed/b.gif", "mixed/c.webp"}
    assert (
        rows["mixed/b.gif"]["status"] == "error"
        and "GIF is not a format this tab takes" in rows["mixed/b.gif"]["error"]
    )
    assert "WEBP is not a format this tab takes" in rows["mixed/c.webp"]["error"]
    assert "**3 input(s)**, 2 could not be read" in outputs[0]


def test_the_batch_tab_decodes_within_the_tabs_budget(app_url, tmp_path):
    """A PNG that decodes to more pixels than the tabs decode gets the tabs' refusal as its row, not a decode."""
    large = tmp_path / "large.png"
    Image.new("I;16", (6_000, 5_000)).save(large)  # 30 MP, 16-bit: over the tabs' 25-MP budget
    kind, outputs = call(app_url, "predict_batch", [PHOTOS, [upload(app_url, large), good_upload(app_url, tmp_path)]])
    assert kind == "complete", outputs
    rows = {row[0]: dict(zip(outputs[1]["headers"], row)) for row in outputs[1]["data"]}
    assert "30,000,000 pixels in PNG is over the 25,000,000 pixels this service decodes" in rows["large.png"]["error"]
    assert str(UPLOADS) not in json.dumps(outputs[1])  # the rows name the user's files, not the server's


def good_upload(app_url, tmp_path) -> dict:
    return upload(app_url, photo(tmp_path / "ok.png", seed=6))
