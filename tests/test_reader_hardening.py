"""The dataset readers against hostile or broken files: every file they are given is generated here, and each case
checks the error type and that the message names the file and the entry a user has to fix."""

import io
import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cervix_hf.data import (
    read_coco,
    read_detection_csv,
    read_iarc_atlas,
    read_image_folder,
    read_intel_mobileodt,
    read_isbi2014_edf,
    read_pairs_csv,
    read_sipakmed,
    read_voc,
)

CSV_HEADER = "filename,xmin,ymin,xmax,ymax,label"


def _write_image(path: Path, size=(100, 80), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size).save(path)
    return path


def _write_coco(path: Path, images, annotations=(), categories=({"id": 1, "name": "nucleus"},)):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"images": images, "annotations": list(annotations), "categories": list(categories)}))
    return path


def _voc_xml(filename: str, boxes=(), size=None) -> str:
    size_element = f"<size><width>{size[0]}</width><height>{size[1]}</height></size>" if size else ""
    objects = "".join(
        f"<object><name>nucleus</name><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax>"
        "</bndbox></object>"
        for x0, y0, x1, y1 in boxes
    )
    return f"<annotation><filename>{filename}</filename>{size_element}{objects}</annotation>"


def _write_pairs(tmp_path: Path, rows) -> Path:
    for name in ["a_pre.jpg", "a_post.jpg"]:
        _write_image(tmp_path / "data" / name, size=(12, 8))
    csv_path = tmp_path / "data" / "pairs.csv"
    csv_path.write_text("\n".join(["pre,post,label", *rows]) + "\n")
    return csv_path


def _message(error) -> str:
    return str(error.value)


# --- paths outside the root --------------------------------------------------------------------------------------


def test_coco_file_name_leaving_the_image_root_is_refused(tmp_path):
    _write_image(tmp_path / "outside_secret.png")
    json_path = _write_coco(tmp_path / "a" / "b" / "train.json", [{"id": 1, "file_name": "../../outside_secret.png"}])
    with pytest.raises(ValueError) as error:
        read_coco(json_path)
    assert f"{json_path}, images[0]" in _message(error) and "outside" in _message(error)
    assert "allow_outside_root=True" in _message(error)


def test_coco_symbolic_link_leaving_the_image_root_is_refused(tmp_path):
    secret = _write_image(tmp_path / "outside_secret.png")
    (tmp_path / "data").mkdir()
    os.symlink(secret, tmp_path / "data" / "innocent.png")
    json_path = _write_coco(tmp_path / "data" / "train.json", [{"id": 7, "file_name": "innocent.png"}])
    with pytest.raises(ValueError) as error:
        read_coco(json_path)
    assert f"{json_path}, images[0] (id 7)" in _message(error) and "outside" in _message(error)


def test_voc_absolute_filename_is_refused(tmp_path):
    (tmp_path / "a.xml").write_text(_voc_xml("/etc/passwd"))
    with pytest.raises(ValueError) as error:
        read_voc(tmp_path)
    assert f"{tmp_path / 'a.xml'}, <filename>" in _message(error) and "'/etc/passwd'" in _message(error)


def test_detection_csv_absolute_filename_is_refused(tmp_path):
    csv_path = tmp_path / "boxes.csv"
    csv_path.write_text(f"{CSV_HEADER}\nok.png,1,1,5,5,nucleus\n/etc/passwd,1,1,5,5,nucleus\n")
    with pytest.raises(ValueError) as error:
        read_detection_csv(csv_path)
    assert f"{csv_path}, line 3" in _message(error) and "'/etc/passwd'" in _message(error)


@pytest.mark.parametrize("bad_path", ["/etc/passwd", "../outside.jpg"], ids=["absolute", "dot-dot"])
def test_pairs_csv_path_outside_the_image_root_is_refused(tmp_path, bad_path):
    _write_image(tmp_path / "outside.jpg")
    csv_path = _write_pairs(tmp_path, ["a_pre.jpg,a_post.jpg,0", f"a_pre.jpg,{bad_path},1"])
    with pytest.raises(ValueError) as error:
        read_pairs_csv(csv_path)
    assert f"{csv_path}, line 3, post image" in _message(error) and repr(bad_path) in _message(error)


def test_outside_paths_are_read_when_the_caller_allows_them(tmp_path):
    outside = _write_image(tmp_path / "outside.png")
    coco = _write_coco(tmp_path / "a" / "train.json", [{"id": 1, "file_name": "../outside.png"}])
    assert read_coco(coco, allow_outside_root=True).records[0].image_path == str(tmp_path / "a" / "../outside.png")
    (tmp_path / "voc").mkdir()
    (tmp_path / "voc" / "a.xml").write_text(_voc_xml(str(outside)))
    assert read_voc(tmp_path / "voc", allow_outside_root=True).records[0].image_path == str(outside)
    csv_path = tmp_path / "a" / "boxes.csv"
    csv_path.write_text(f"{CSV_HEADER}\n{outside},1,1,5,5,nucleus\n")
    assert read_detection_csv(csv_path, allow_outside_root=True).records[0].image_path == str(outside)
    pairs = _write_pairs(tmp_path, [f"{outside},a_post.jpg,1"])
    assert read_pairs_csv(pairs, allow_outside_root=True).records[0].pre_path == str(outside)


def _link_out(link: Path, target: Path) -> Path:
    link.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, link)
    return link


def _image_folder_with_a_link_out(root: Path, outside: Path):
    _write_image(root / "Type_1" / "own.png")
    _link_out(root / "Type_2" / "innocent.png", _write_image(outside / "secret.png"))
    return lambda allow: read_image_folder(root, allow_outside_root=allow).paths, "Type_2/innocent.png"


def _image_folder_with_a_class_folder_linked_out(root: Path, outside: Path):
    _write_image(root / "Type_1" / "own.png")
    _write_image(outside / "elsewhere" / "secret.png")
    _link_out(root / "Type_2", outside / "elsewhere")
    return lambda allow: read_image_folder(root, allow_outside_root=allow).paths, "Type_2/secret.png"


def _intel_train_with_a_link_out(root: Path, outside: Path):
    _write_image(root / "train" / "Type_1" / "1.jpg")
    _link_out(root / "train" / "Type_3" / "3.jpg", _write_image(outside / "secret.jpg"))
    return lambda allow: read_intel_mobileodt(root, ("train",), allow).paths, "train/Type_3/3.jpg"


def _intel_test_with_a_link_out(root: Path, outside: Path):
    _link_out(root / "test" / "9.jpg", _write_image(outside / "secret.jpg"))
    (root / "solution_stg1_release.csv").write_text("image_name,Type_1,Type_2,Type_3\n9.jpg,0,1,0\n")
    return lambda allow: read_intel_mobileodt(root, ("test",), allow).paths, "test/9.jpg"


def _intel_solution_csv_linked_out(root: Path, outside: Path):
    _write_image(root / "test" / "9.jpg")
    (outside / "private.csv").parent.mkdir(parents=True, exist_ok=True)
    (outside / "private.csv").write_text("image_name,Type_1,Type_2,Type_3\n9.jpg,0,1,0\n")
    _link_out(root / "solution_stg1_release.csv", outside / "private.csv")
    return lambda allow: read_intel_mobileodt(root, ("test",), allow).paths, "solution_stg1_release.csv"


def _iarc_atlas_with_a_link_out(root: Path, outside: Path):
    case = root / "images_low_grade" / "case_A"
    _write_image(case / "1_After_normal_saline.jpg")
    _link_out(case / "2_After_acetic_acid.jpg", _write_image(outside / "secret.jpg"))
    return (
        lambda allow: [r.post_path for r in read_iarc_atlas(root, allow_outside_root=allow).records],
        "images_low_grade/case_A/2_After_acetic_acid.jpg",
    )


def _isbi_with_a_link_out(root: Path, outside: Path):
    _write_image(root / "EDF000.png", size=(20, 10), mode="L")
    _link_out(root / "EDF000_GT.png", _write_image(outside / "secret.png", size=(20, 10), mode="L"))
    return lambda allow: [r.image_path for r in read_isbi2014_edf(root, allow_outside_root=allow).records], (
        "EDF000_GT.png"
    )


@pytest.mark.parametrize(
    "layout",
    [
        _image_folder_with_a_link_out,
        _image_folder_with_a_class_folder_linked_out,
        _intel_train_with_a_link_out,
        _intel_test_with_a_link_out,
        _intel_solution_csv_linked_out,
        _iarc_atlas_with_a_link_out,
        _isbi_with_a_link_out,
    ],
)
def test_folder_readers_refuse_a_symbolic_link_leading_out_of_the_data_folder(tmp_path, layout, caplog):
    root, outside = tmp_path / "data", tmp_path / "outside"
    read, link = layout(root, outside)
    with pytest.raises(ValueError) as error:
        read(False)
    assert repr(link) in _message(error) and "outside" in _message(error) and str(root) in _message(error)
    assert read(True)  # the caller who trusts the folder reads it


def test_a_symbolic_link_inside_the_data_folder_is_read(tmp_path):
    root = tmp_path / "data"
    real = _write_image(root / "Type_1" / "a.png")
    _link_out(root / "Type_2" / "b.png", real)
    assert read_image_folder(root).paths == [str(root / "Type_1" / "a.png"), str(root / "Type_2" / "b.png")]


def test_a_file_name_too_long_for_the_file_system_names_the_csv_and_line(tmp_path):
    name = "x" * 10_000 + ".png"
    detections = tmp_path / "boxes.csv"
    detections.write_text(f"{CSV_HEADER}\n{name},1,1,5,5,nucleus\n")
    with pytest.raises(ValueError) as error:
        read_detection_csv(detections)
    assert f"{detections}, line 2" in _message(error) and "too long" in _message(error)
    assert len(_message(error)) < 300  # the name is shortened in the message
    pairs = _write_pairs(tmp_path, [f"a_pre.jpg,{name},1"])
    with pytest.raises(ValueError) as error:
        read_pairs_csv(pairs)
    assert f"{pairs}, line 2, post image" in _message(error) and "too long" in _message(error)


# --- malformed COCO ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "coco, entry, problem",
    [
        ({"images": [{"id": 1}], "annotations": [], "categories": []}, ", images[0]", "file_name"),
        ({"images": ["a.png"], "annotations": [], "categories": []}, ", images[0]", "expected an object"),
        ({"images": {"id": 1}, "annotations": [], "categories": []}, ": images must be a list", "{'id': 1}"),
        ({"images": [{"file_name": "a.png"}], "annotations": [], "categories": []}, ", images[0]", "id must be"),
        ({"images": [], "annotations": [], "categories": [{"name": "x"}]}, ", categories[0]", "id must be"),
        (
            {"images": [], "annotations": [], "categories": [{"id": 1, "name": "x"}, {"id": "2", "name": "y"}]},
            ", categories[1]",
            "id must be an integer",
        ),
        ({"images": [], "annotations": [["bbox"]], "categories": []}, ", annotations[0]", "expected an object"),
        (
            {
                "images": [{"id": 1, "file_name": "a.png"}],
                "annotations": [{"id": 5, "image_id": [1]}],
                "categories": [],
            },
            ", annotation 5",
            "unknown image_id",
        ),
        (
            {
                "images": [{"id": 1, "file_name": "a.png"}],
                "categories": [{"id": 1, "name": "x"}],
                "annotations": [{"image_id": 1, "category_id": 1, "bbox": ["x", 1, 5, 5]}],
            },
            ", annotations[0]",
            "four numbers",
        ),
        (
            {
                "images": [{"id": 1, "file_name": "a.png", "width": "wide", "height": 80}],
                "annotations": [],
                "categories": [],
            },
            ", images[0] (id 1)",
            "width and height must be numbers",
        ),
        (5, ": not a COCO detection file", "5"),
    ],
    ids=[
        "no file_name",
        "image not an object",
        "images not a list",
        "image without id",
        "category without id",
        "category id a string",
        "annotation not an object",
        "unhashable image_id",
        "non-numeric bbox",
        "non-numeric width",
        "top level a number",
    ],
)
def test_malformed_coco_names_the_file_and_entry(tmp_path, coco, entry, problem):
    json_path = tmp_path / "train.json"
    json_path.write_text(json.dumps(coco))
    with pytest.raises(ValueError) as error:
        read_coco(json_path)
    assert f"{json_path}{entry}" in _message(error) and problem in _message(error)


def test_deeply_nested_coco_json_is_a_value_error(tmp_path):
    json_path = tmp_path / "train.json"
    json_path.write_text('{"images": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(ValueError) as error:
        read_coco(json_path)
    assert str(json_path) in _message(error) and "nested too deeply" in _message(error)


def test_duplicate_coco_image_ids_are_refused(tmp_path):
    json_path = _write_coco(
        tmp_path / "train.json",
        [{"id": 3, "file_name": "a.png"}, {"id": 3, "file_name": "b.png"}],
        [{"id": 1, "image_id": 3, "category_id": 1, "bbox": [1, 1, 4, 4]}],
    )
    with pytest.raises(ValueError) as error:
        read_coco(json_path)
    assert f"{json_path}, images[1] (id 3)" in _message(error) and "first at images[0]" in _message(error)


# --- folders, bytes and csv limits --------------------------------------------------------------------------------


def test_a_folder_named_like_a_sipakmed_boundary_file_is_a_value_error(tmp_path):
    folder = tmp_path / "im_Parabasal"
    _write_image(folder / "001.bmp", size=(80, 60))
    (folder / "001_cyt01.dat").mkdir()
    with pytest.raises(ValueError) as error:
        read_sipakmed(tmp_path)
    assert str(folder / "001_cyt01.dat") in _message(error) and "cell 01 of 001.bmp" in _message(error)


@pytest.mark.parametrize("reader", ["coco", "voc", "csv", "pairs"])
def test_a_folder_in_place_of_an_annotation_file_is_a_value_error(tmp_path, reader):
    names = {"coco": "train.json", "voc": "a.xml", "csv": "boxes.csv", "pairs": "pairs.csv"}
    folder = tmp_path / names[reader]
    folder.mkdir()
    read = {"coco": read_coco, "voc": lambda path: read_voc([path]), "csv": read_detection_csv, "pairs": read_pairs_csv}
    with pytest.raises(ValueError) as error:
        read[reader](folder)
    assert f"{folder} is a folder" in _message(error)


@pytest.mark.parametrize("reader", ["coco", "csv", "pairs"])
def test_undecodable_text_names_the_file_and_line(tmp_path, reader):
    path = tmp_path / "annotations.txt"
    first_line = {"coco": b'{"images": [],', "csv": CSV_HEADER.encode(), "pairs": b"pre,post,label"}[reader]
    path.write_bytes(first_line + b"\nd\xe9j\xe0-vu.png,1,1,5,5,nucleus\n")
    read = {"coco": read_coco, "csv": read_detection_csv, "pairs": read_pairs_csv}[reader]
    with pytest.raises(ValueError) as error:
        read(path)
    assert f"{path}, line 2: not UTF-8" in _message(error)


@pytest.mark.parametrize("reader", ["csv", "pairs"])
def test_an_oversized_csv_field_names_the_file_and_line(tmp_path, reader):
    csv_path = tmp_path / "rows.csv"
    header = CSV_HEADER if reader == "csv" else "pre,post,label"
    csv_path.write_text(f'{header}\n"{"x" * 200_000}",1,1,5,5,nucleus\n')
    read = read_detection_csv if reader == "csv" else read_pairs_csv
    with pytest.raises(ValueError) as error:
        read(csv_path)
    assert f"{csv_path}, line 2" in _message(error) and "field larger than field limit" in _message(error)


def test_one_image_written_two_ways_in_a_detection_csv_is_refused(tmp_path):
    csv_path = tmp_path / "boxes.csv"
    csv_path.write_text(f"{CSV_HEADER}\na.png,1,1,5,5,nucleus\nsub/../a.png,6,6,9,9,nucleus\n")
    with pytest.raises(ValueError) as error:
        read_detection_csv(csv_path)
    assert f"{csv_path}, line 3" in _message(error) and "listed as 'a.png' on line 2" in _message(error)


def test_a_pair_listed_twice_is_refused(tmp_path):
    csv_path = _write_pairs(tmp_path, ["a_pre.jpg,a_post.jpg,0", "./a_pre.jpg,a_post.jpg,0"])
    with pytest.raises(ValueError) as error:
        read_pairs_csv(csv_path)
    assert f"{csv_path}, line 3" in _message(error) and "already listed on line 2" in _message(error)


# --- ISBI 2014 ground truth ---------------------------------------------------------------------------------------


def _png_bytes(size=(64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, size[::-1], dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    "truth",
    [b"", b"this is not a png at all", _png_bytes()[: len(_png_bytes()) // 2]],
    ids=["empty", "garbage", "truncated"],
)
def test_an_unreadable_isbi_ground_truth_names_the_file(tmp_path, truth):
    _write_image(tmp_path / "EDF000.png", size=(64, 48), mode="L")
    (tmp_path / "EDF000_GT.png").write_bytes(truth)
    with pytest.raises(ValueError) as error:
        read_isbi2014_edf(tmp_path)
    assert f"{tmp_path / 'EDF000_GT.png'}: cannot read the ground truth of EDF000.png" in _message(error)


def test_an_isbi_ground_truth_of_another_size_is_refused(tmp_path):
    _write_image(tmp_path / "EDF000.png", size=(64, 48), mode="L")
    Image.fromarray(np.pad(np.ones((4, 4), np.uint8), 10)).save(tmp_path / "EDF000_GT.png")
    with pytest.raises(ValueError) as error:
        read_isbi2014_edf(tmp_path)
    assert str(tmp_path / "EDF000_GT.png") in _message(error) and "24x24" in _message(error)
    assert "EDF000.png is 64x48" in _message(error)


# --- boxes outside the image --------------------------------------------------------------------------------------

# On a 100x80 image: one box inside, one across the right edge, one starting left of it, one entirely outside.
BOXES_XYXY = [(10, 10, 20, 20), (90, 70, 150, 90), (-5, 2, 8, 6), (5000, 5000, 5100, 5100)]
CLIPPED = [(10.0, 10.0, 20.0, 20.0), (90.0, 70.0, 100.0, 80.0), (0.0, 2.0, 8.0, 6.0)]


def _assert_clipped(records, source, caplog):
    assert records.records[0].boxes == CLIPPED and records.records[0].labels == [0, 0, 0]
    messages = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert messages == [f"clipped 3 box(es) to the image in {source}, dropping 1 left with no area inside it."]
    assert records.warnings == messages


def test_detection_csv_boxes_are_clipped_to_the_image_header(tmp_path, caplog):
    _write_image(tmp_path / "a.png")
    csv_path = tmp_path / "boxes.csv"
    csv_path.write_text("\n".join([CSV_HEADER] + [f"a.png,{x0},{y0},{x1},{y1},n" for x0, y0, x1, y1 in BOXES_XYXY]))
    with caplog.at_level(logging.WARNING):
        records = read_detection_csv(csv_path)
    _assert_clipped(records, csv_path, caplog)


def test_coco_boxes_are_clipped_to_the_declared_image_size(tmp_path, caplog):
    annotations = [
        {"id": n, "image_id": 1, "category_id": 1, "bbox": [x0, y0, x1 - x0, y1 - y0]}
        for n, (x0, y0, x1, y1) in enumerate(BOXES_XYXY)
    ]
    json_path = _write_coco(
        tmp_path / "train.json", [{"id": 1, "file_name": "a.png", "width": 100, "height": 80}], annotations
    )
    with caplog.at_level(logging.WARNING):
        records = read_coco(json_path)
    _assert_clipped(records, json_path, caplog)


def test_voc_boxes_are_clipped_to_the_declared_image_size(tmp_path, caplog):
    # VOC boxes are 1-based with an inclusive last pixel: write (x0 + 1, y0 + 1, x1, y1).
    voc_boxes = [(x0 + 1, y0 + 1, x1, y1) for x0, y0, x1, y1 in BOXES_XYXY]
    (tmp_path / "a.xml").write_text(_voc_xml("a.png", voc_boxes, size=(100, 80)))
    with caplog.at_level(logging.WARNING):
        records = read_voc(tmp_path)
    _assert_clipped(records, tmp_path / "a.xml", caplog)
