"""Untrusted input: images of any size held within each model's bound, checkpoints loaded strictly, and the app's
API calls typed and validated (what an adversarial user sent, and what each now gets)."""

import csv
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from cervix_hf import (
    CellDetectorForObjectDetection,
    CellDetectorImageProcessor,
    ColpoNetForImageClassification,
    ColpoNetImageProcessor,
    ImageLoadError,
    load_image,
)
from cervix_hf.app.exports import ExportFolders
from cervix_hf.app.inputs import safe_upload_name
from cervix_hf.app.models import TASKS_BY_NAME, AppModels, ModelSlot
from cervix_hf.io.images import original_size
from cervix_hf.io.results import write_detections
from cervix_hf.prediction.inference import (
    CellDetection,
    ModelLoadError,
    classify_cervix_type,
    detect_cells,
    load_classifier,
)
from cervix_hf.registry import cell_detector_config, colponet_config, family

from . import expectations
from .conftest import launch_app


def save_png(path, size, mode="L"):
    Image.new(mode, size, 128).save(path)
    return path


# --- Images: reduced to the model's bound while decoding, refused when too small ---------------------------------


def test_a_huge_image_is_reduced_to_the_bound_and_remembers_its_size(tmp_path):
    huge = save_png(tmp_path / "huge.png", (10000, 10000))  # 100 MP, a few hundred kB: the reported attack
    image = load_image(huge, max_side=2048)
    assert image.size == (2048, 2048) and image.mode == "RGB"
    assert original_size(image) == (10000, 10000)
    wide = Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 6000, 3), dtype=np.uint8))
    wide.save(tmp_path / "wide.jpg", quality=90)
    assert load_image(tmp_path / "wide.jpg", max_side=1000).size == (1000, 50)  # 6000x300 scaled by 1/6
    assert load_image(tmp_path / "wide.jpg").size == (6000, 300)  # no bound, no change


MEASURE = textwrap.dedent("""
    import sys
    from cervix_hf import load_image
    max_side = None if sys.argv[2] == "none" else int(sys.argv[2])
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # resets the peak resident size to the current one
    before = int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0])
    image = load_image(sys.argv[1], max_side=max_side)
    peak = int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])
    print(peak - before)
""")


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux's /proc peak-RSS reset")
def test_a_large_jpeg_is_never_decoded_at_full_size(tmp_path):
    photo = tmp_path / "48mp.jpg"
    Image.new("RGB", (8000, 6000), (180, 90, 60)).save(photo, quality=80)

    def peak_kib(max_side: str) -> int:
        command = [sys.executable, "-c", MEASURE, str(photo), max_side]
        return int(subprocess.run(command, capture_output=True, text=True, check=True).stdout)

    full, bounded = peak_kib("none"), peak_kib("2048")
    assert full > 100_000  # 144 MB of RGB pixels at full size
    assert bounded < full / 4, (full, bounded)  # decoded at 1/4 scale (2000x1500), then reduced


def test_a_memory_budget_refuses_what_cannot_be_decoded_small_and_keeps_jpeg(tmp_path):
    png = save_png(tmp_path / "scan.png", (6000, 5000))
    Image.new("RGB", (6000, 5000), (120, 60, 30)).save(tmp_path / "photo.jpg", quality=80)
    with pytest.raises(ImageLoadError, match=r"6000x5000 = 30,000,000 pixels in PNG is over the 25,000,000") as error:
        load_image(png, max_side=2048, max_decoded_pixels=25_000_000)
    assert "scan.png" in str(error.value)
    image = load_image(tmp_path / "photo.jpg", max_side=2048, max_decoded_pixels=25_000_000)
    assert image.size == (2048, round(5000 * 2048 / 6000)) and original_size(image) == (6000, 5000)
    assert load_image(png, max_side=2048).size == image.size  # no budget: decoded at full size, then reduced


def tiny_detector():
    torch.manual_seed(0)
    return CellDetectorForObjectDetection(cell_detector_config("tiny")).eval(), CellDetectorImageProcessor()


def test_too_small_or_too_thin_images_get_a_clear_error_not_a_crash_or_blurry(tmp_path):
    model, processor = tiny_detector()
    thin = save_png(tmp_path / "thin.png", (1, 5000))
    with pytest.raises(ImageLoadError, match=r"1x5000 pixels.*at least 32 pixels per side") as error:
        detect_cells(model, processor, thin)
    assert "thin.png" in str(error.value)
    colponet = ColpoNetForImageClassification(colponet_config("tiny")).eval()
    with pytest.raises(ImageLoadError, match=r"1x1 pixels.*at least 32") as error:
        classify_cervix_type(colponet, ColpoNetImageProcessor(), save_png(tmp_path / "dot.png", (1, 1)))
    assert "blurry" not in str(error.value)


def test_boxes_of_an_image_over_the_detector_bound_are_in_its_own_pixels(tmp_path):
    model, processor = tiny_detector()
    bound = family("cell_detector").input_max_side
    rng = np.random.default_rng(1)
    big = Image.fromarray(rng.integers(0, 255, (4500, 6000, 3), dtype=np.uint8))
    big.save(tmp_path / "big.png")
    found = detect_cells(model, processor, tmp_path / "big.png", threshold=0.0)
    # Independently: the detector on the image reduced by hand to the bound, its boxes scaled back by 6000/bound.
    reduced = big.resize((bound, round(4500 * bound / 6000)), Image.Resampling.BILINEAR, reducing_gap=2.0)
    expected = expectations.detections(model, reduced, 0.0)
    assert len(found) == len(expected) > 0
    scale = 6000 / bound
    for cell, (label, score, box) in zip(found, expected):
        assert cell.label == label and cell.score == pytest.approx(score, abs=1e-5)
        assert cell.box == pytest.approx([v * scale for v in box], rel=1e-4, abs=1e-2)
    assert max(cell.box[2] for cell in found) > bound  # in the 6000-px image's pixels, not the reduced one's


# --- Checkpoints: safetensors only, every weight present, the file named when corrupt ----------------------------


@pytest.fixture
def saved_colponet(tmp_path):
    folder = tmp_path / "colponet"
    ColpoNetForImageClassification(colponet_config("tiny")).save_pretrained(folder)
    ColpoNetImageProcessor().save_pretrained(folder)
    return folder


def test_a_checkpoint_missing_a_weight_is_refused_naming_the_weight(saved_colponet):
    weights = load_file(saved_colponet / "model.safetensors")
    dropped = sorted(weights)[3]
    del weights[dropped]
    save_file(weights, saved_colponet / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ModelLoadError, match="missing keys") as error:
        load_classifier(str(saved_colponet))
    assert dropped in str(error.value) and str(saved_colponet) in str(error.value)


def test_pickled_weights_are_never_loaded(saved_colponet):
    model = ColpoNetForImageClassification.from_pretrained(saved_colponet)
    (saved_colponet / "model.safetensors").unlink()
    torch.save(model.state_dict(), saved_colponet / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match=r"only pickled PyTorch weights"):
        load_classifier(str(saved_colponet))


def test_a_truncated_weights_file_is_named(saved_colponet):
    weights = saved_colponet / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ModelLoadError, match=r"model\.safetensors\) is corrupt or truncated") as error:
        load_classifier(str(saved_colponet))
    assert str(saved_colponet) in str(error.value)


def _edit_json(path: Path, change) -> None:
    values = json.loads(path.read_text())
    change(values)
    path.write_text(json.dumps(values))


HOSTILE_FOLDERS = {
    # name: (what is done to the saved folder, the file the error must name, words it must say)
    "shapes mismatched": (
        lambda folder: _edit_json(folder / "config.json", lambda c: c.update(reduction_channels=24)),
        "model.safetensors",
        "other shapes than config.json",
    ),
    "negative size": (
        lambda folder: _edit_json(folder / "config.json", lambda c: c["backbone_config"].update(embedding_size=-8)),
        "config.json",
        "cannot be built",
    ),
    "config nested 100k deep": (
        lambda folder: (folder / "config.json").write_text(
            (folder / "config.json").read_text().rstrip().removesuffix("}")
            + ', "x": '
            + "[" * 100_000
            + "]" * 100_000
            + "}"
        ),
        "config.json",
        "does not describe a model",
    ),
    "processor asking for 100000x100000 px": (
        lambda folder: _edit_json(
            folder / "preprocessor_config.json", lambda p: p.update(size={"height": 100_000, "width": 100_000})
        ),
        "preprocessor_config.json",
        "from 1 to 2048",
    ),
    "processor asking for a negative size": (
        lambda folder: _edit_json(
            folder / "preprocessor_config.json", lambda p: p.update(size={"height": -5, "width": 224})
        ),
        "preprocessor_config.json",
        "from 1 to 2048",
    ),
}


@pytest.mark.parametrize("case", HOSTILE_FOLDERS)
def test_a_hostile_model_folder_is_refused_when_loaded_naming_the_file(saved_colponet, case):
    spoil, file, words = HOSTILE_FOLDERS[case]
    spoil(saved_colponet)
    with pytest.raises(ModelLoadError) as error:
        load_classifier(str(saved_colponet))
    assert str(saved_colponet) in str(error.value) and file in str(error.value) and words in str(error.value)


def test_predict_says_why_a_hostile_model_folder_cannot_be_used_instead_of_a_traceback(saved_colponet, tmp_path):
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(photo)
    for case in ("config nested 100k deep", "processor asking for 100000x100000 px"):
        folder = tmp_path / case.replace(" ", "_")
        shutil.copytree(saved_colponet, folder)
        spoil, file, _ = HOSTILE_FOLDERS[case]
        spoil(folder)
        command = [str(Path(sys.executable).with_name("cervix-hf")), "predict", "--model", str(folder), str(photo)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
        assert result.returncode == 2, (case, result.stderr[-2000:])
        assert "Traceback" not in result.stderr and f"{file}" in result.stderr.splitlines()[-1], result.stderr[-2000:]
        assert result.stdout == ""  # nothing predicted


def test_the_app_refuses_a_broken_checkpoint_named_by_its_flag_never_serving_it_untrained(saved_colponet, tmp_path):
    weights = load_file(saved_colponet / "model.safetensors")
    del weights[sorted(weights)[0]]
    save_file(weights, saved_colponet / "model.safetensors", metadata={"format": "pt"})
    slot = ModelSlot(
        TASKS_BY_NAME["colponet"],
        requested=str(saved_colponet),
        checkpoints_dir=tmp_path / "none",
        untrained_size="tiny",
    )
    with pytest.raises(ModelLoadError, match="do not match") as error:  # said at start, naming the flag
        slot.get()
    assert "--colponet" in str(error.value) and str(saved_colponet) in str(error.value)


# --- Files the app and the exports write -------------------------------------------------------------------------


def test_detection_csv_cells_are_never_spreadsheet_formulas(tmp_path):
    cell = CellDetection("-1+cmd", 0.9, (1.0, 2.0, 3.0, 4.0))
    write_detections([('=HYPERLINK("http://x")', [cell])], tmp_path / "d.csv", tmp_path / "d.json", ["-1+cmd"])
    row, summary = list(csv.DictReader((tmp_path / "d.csv").open()))  # the cell's row, then the image's
    assert row["image"] == summary["image"] == '\'=HYPERLINK("http://x")' and row["label"] == "'-1+cmd"
    assert float(row["score"]) == 0.9 and summary["cells"] == "1"
    assert json.loads((tmp_path / "d.json").read_text())[0]["image"] == '=HYPERLINK("http://x")'  # data, as given


def test_a_link_planted_at_an_output_s_temporary_name_is_never_written_through(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    csv_path, json_path = tmp_path / "d.csv", tmp_path / "d.json"
    for output in (csv_path, json_path):  # the names the temporary files used to have
        os.symlink(victim, output.with_name(output.name + ".tmp"))
    write_detections(
        [("a.png", [CellDetection("nucleus", 0.9, (1.0, 2.0, 3.0, 4.0))])], csv_path, json_path, ["nucleus"]
    )
    assert victim.read_text() == "precious"
    assert [row["label"] for row in csv.DictReader(csv_path.open()) if row["row"] == "cell"] == ["nucleus"]
    assert json.loads(json_path.read_text())[0]["image"] == "a.png"
    assert not csv_path.is_symlink() and not json_path.is_symlink()
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "d.csv",
        "d.csv.tmp",
        "d.json",
        "d.json.tmp",
        "victim.txt",
    ]
    umask = os.umask(0)
    os.umask(umask)
    assert csv_path.stat().st_mode & 0o777 == 0o666 & ~umask  # as a file `open` creates, readable by others


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("photo.jpg", "photo.jpg"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\scan 1.png", "scan 1.png"),
        ("a\x00b.png", "a_b.png"),
        ("=cmd|' -C calc'!A0.png", "_cmd__ -C calc__A0.png"),
        ("x" * 300 + ".jpeg", "x" * 95 + ".jpeg"),
        ("...", "image"),
    ],
)
def test_upload_names_are_safe_file_names(name, expected):
    assert safe_upload_name(name) == expected


def test_a_killed_app_s_temporary_folder_is_removed_by_the_next_app(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    orphan = tmp_path / f"{ExportFolders.PREFIX}{dead.pid}_abc"
    (orphan / "request").mkdir(parents=True)
    alive = tmp_path / f"{ExportFolders.PREFIX}{os.getppid()}_def"
    alive.mkdir()
    exports = ExportFolders(parent=str(tmp_path))
    assert not orphan.exists() and alive.is_dir()
    assert exports.new().parent.name.startswith(f"{ExportFolders.PREFIX}{os.getpid()}_")


# --- The app's API, called with raw payloads as any HTTP client can -------------------------------------------


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    models = AppModels.from_settings(checkpoints_dir=tmp_path_factory.mktemp("empty"), untrained_size="tiny")
    from cervix_hf import app

    demo = launch_app(app.build_demo(models))
    yield demo.local_url.rstrip("/")
    demo.close()


def upload(url: str, path, orig_name: str | None = None) -> dict:
    with open(path, "rb") as handle:
        response = httpx.post(f"{url}/gradio_api/upload", files={"files": (path.name, handle)}, timeout=60)
    response.raise_for_status()
    return {"path": response.json()[0], "orig_name": orig_name or path.name, "meta": {"_type": "gradio.FileData"}}


def call(url: str, api_name: str, *data) -> tuple[str, object]:
    """("complete", outputs) or ("error", message) of one call of `api_name` with raw `data`."""
    started = httpx.post(f"{url}/gradio_api/call/{api_name}", json={"data": list(data)}, timeout=60)
    started.raise_for_status()
    with httpx.stream("GET", f"{url}/gradio_api/call/{api_name}/{started.json()['event_id']}", timeout=300) as stream:
        event = None
        for line in stream.iter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: ") and event in ("complete", "error"):
                data = json.loads(line.removeprefix("data: "))
                return event, data["error"] if event == "error" and isinstance(data, dict) else data
    raise AssertionError(f"no result for {api_name}")


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    path = tmp_path_factory.mktemp("photos") / "photo.png"
    Image.fromarray(np.random.default_rng(2).integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(path)
    return path


@pytest.mark.parametrize("value", ["false", "true", 0, None, [True]])
def test_a_checkbox_takes_only_true_or_false(app_url, photo, value):
    kind, message = call(app_url, "classify_cervix_type", upload(app_url, photo), value)
    assert kind == "error" and "must be true or false" in message, message


@pytest.mark.parametrize("value", [None, {"name": "screening"}, ["screening"], 3, "Screening"])
def test_an_operating_point_must_be_one_of_the_choices(app_url, photo, value):
    kind, message = call(app_url, "classify_prepost", upload(app_url, photo), upload(app_url, photo), value, 0.5, 0.45)
    assert kind == "error" and "The operating point must be one of" in message, message


@pytest.mark.parametrize("value", [True, None, "half", float("inf")])
def test_a_threshold_must_be_a_number_from_0_to_1(app_url, photo, value):
    payload = "Infinity" if value == float("inf") else value
    kind, message = call(app_url, "detect_cells", upload(app_url, photo), payload)
    assert kind == "error" and "threshold must be" in message, message


@pytest.mark.parametrize("orig_name", ["n" * 304 + ".png", "a\x00b.png", "=1+2.png", "../../x.png"])
def test_any_upload_name_gives_safe_download_names_and_a_result(app_url, photo, orig_name):
    kind, outputs = call(app_url, "detect_cells", upload(app_url, photo, orig_name), 0.5)
    assert kind == "complete", outputs
    name = os.path.basename(outputs[3]["path"])
    expected = safe_upload_name(orig_name)
    assert name == expected.rpartition(".")[0] + "_UNTRAINED_MODEL_detections.csv"
    assert len(name) < 160 and "\x00" not in name and not name.startswith(("=", "."))


def test_the_app_refuses_a_100_megapixel_png_from_its_header(app_url, tmp_path):
    bomb = upload(app_url, save_png(tmp_path / "bomb.png", (10000, 10000)))
    kind, message = call(app_url, "classify_cervix_type", bomb, True)
    assert kind == "error" and "10000x10000" in message and "Save it as JPEG" in message, message


def test_an_image_too_thin_for_the_detector_gets_its_size_in_the_error(app_url, tmp_path):
    kind, message = call(app_url, "detect_cells", upload(app_url, save_png(tmp_path / "thin.png", (1, 5000))), 0.5)
    assert kind == "error" and "1x5000 pixels" in message and "at least 32" in message, message
    kind, _ = call(app_url, "detect_cells", upload(app_url, save_png(tmp_path / "ok.png", (64, 64), "RGB")), 0.5)
    assert kind == "complete"  # and the app keeps serving


def test_a_drawn_image_is_never_served_half_written_while_another_request_draws_it(tmp_path):
    """Two requests drawing the same image at once: gradio names the file by its content, so the second rewrites the
    file the first is being served from (gradio's own `save_pil_to_cache` fails this test: short reads)."""
    import threading

    from gradio import processing_utils

    from cervix_hf.app.gradio_patches import save_pil_to_cache_atomically, write_drawn_images_atomically

    write_drawn_images_atomically()  # as the app does; gradio's components then save through it
    save = processing_utils.save_pil_to_cache
    assert save is save_pil_to_cache_atomically
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (800, 800, 3), dtype=np.uint8))
    path = Path(save(image, str(tmp_path), format="png"))
    size = path.stat().st_size
    stop, short_reads = threading.Event(), []

    def read():
        while not stop.is_set():
            if len(path.read_bytes()) != size:
                short_reads.append(1)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for _ in range(20):
            assert save(image, str(tmp_path), format="png") == str(path)
    finally:
        stop.set()
        reader.join()
    assert not short_reads and len(path.read_bytes()) == size
    assert not [p for p in path.parent.iterdir() if p != path]  # no staging file left behind
