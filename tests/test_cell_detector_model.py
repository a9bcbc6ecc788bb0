"""The cell detector as a transformers model: contract, save/load, remote code and pipeline, post-processing."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from transformers import AutoImageProcessor, AutoModelForObjectDetection

from cervix_hf import CellDetectorConfig, CellDetectorForObjectDetection, CellDetectorImageProcessor
from cervix_hf.prediction.inference import detect_cells
from cervix_hf.registry import cell_detector_config


@pytest.fixture(scope="module")
def tiny_detector_dir(tmp_path_factory):
    torch.manual_seed(0)
    model = CellDetectorForObjectDetection(cell_detector_config("tiny", id2label={0: "nucleus", 1: "cell"}))
    directory = tmp_path_factory.mktemp("tiny-detector")
    model.save_pretrained(directory)
    CellDetectorImageProcessor().save_pretrained(directory)
    return directory


def synthetic_field(size=(320, 256), box=(100, 80, 160, 130)):
    image = Image.new("RGB", size, (20, 20, 20))
    ImageDraw.Draw(image).rectangle(box, fill=(240, 240, 240))
    return image


def test_background_class_is_added_once_and_defaults_suit_cells():
    config = CellDetectorConfig()
    assert list(config.id2label.values()) == [
        "Dyskeratotic",
        "Koilocytotic",
        "Metaplastic",
        "Parabasal",
        "Superficial-Intermediate",
    ]
    model = CellDetectorForObjectDetection(cell_detector_config("tiny"))
    assert model.detector.roi_heads.box_predictor.cls_score.out_features == config.num_labels + 1
    assert config.anchor_sizes[0] <= 20 <= config.anchor_sizes[1]  # ~20 px nuclei on the finest level


@pytest.mark.parametrize(
    "argument, value",
    [("box_nms_threshold", 1.5), ("min_size", 0), ("anchor_sizes", [16, 32]), ("trainable_backbone_stages", 7)],
)
def test_bad_config_values_name_the_argument(argument, value):
    with pytest.raises(ValueError, match=argument):
        CellDetectorConfig(**{argument: value})


def test_batch_norm_is_frozen_and_early_stages_do_not_train():
    model = CellDetectorForObjectDetection(cell_detector_config("tiny", trainable_backbone_stages=2))
    body = model.detector.backbone.body
    model.train()
    batch_norms = model.detector.backbone.batch_norms()
    assert batch_norms and not any(m.training or m.weight.requires_grad for m in batch_norms)
    model.set_backbone_trainable(True)
    assert not any(m.weight.requires_grad for m in batch_norms)
    assert not any(p.requires_grad for p in body.embedder.parameters())
    assert not any(p.requires_grad for p in body.encoder.stages[1].parameters())
    convolutions = [m for m in body.encoder.stages[3].modules() if isinstance(m, torch.nn.Conv2d)]
    assert convolutions and all(m.weight.requires_grad for m in convolutions)


def test_training_returns_losses_including_images_without_cells():
    torch.manual_seed(0)
    model = CellDetectorForObjectDetection(cell_detector_config("tiny", id2label={0: "nucleus"})).train()
    processor = CellDetectorImageProcessor()
    batch = processor(
        [synthetic_field(), Image.new("L", (200, 240))],
        annotations=[{"boxes": [[100, 80, 161, 131]], "class_labels": [0]}, {"boxes": [], "class_labels": []}],
        return_tensors="pt",
    )
    outputs = model(**batch)
    assert set(outputs.loss_dict) == {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}
    assert torch.isfinite(outputs.loss) and outputs.loss > 0
    outputs.loss.backward()
    with pytest.raises(ValueError, match="needs `labels`"):
        model(pixel_values=batch["pixel_values"])


def test_processor_pads_and_rejects_boxes_outside_the_image():
    processor = CellDetectorImageProcessor()
    batch = processor([Image.new("RGB", (30, 20)), Image.new("RGB", (10, 40))], return_tensors="pt")
    assert batch["pixel_values"].shape == (2, 3, 40, 30)
    assert batch["pixel_mask"][1].sum() == 10 * 40 and batch["pixel_mask"][1, :, 10:].sum() == 0
    with pytest.raises(ValueError, match=r"annotations\[0\] box 0"):
        processor(Image.new("RGB", (30, 20)), annotations=[{"boxes": [[5, 5, 31, 10]], "class_labels": [0]}])


def test_post_processing_rescales_boxes_to_the_target_size():
    outputs = {
        "pred_boxes": torch.tensor([[[10.0, 20.0, 30.0, 40.0], [0.0, 0.0, 0.0, 0.0]]]),
        "scores": torch.tensor([[0.9, 0.0]]),
        "pred_labels": torch.tensor([[1, -1]]),
        "detection_mask": torch.tensor([[True, False]]),
        "image_sizes": torch.tensor([[100, 50]]),
    }
    result = CellDetectorImageProcessor().post_process_object_detection(outputs, 0.5, target_sizes=[(200, 150)])[0]
    torch.testing.assert_close(result["boxes"], torch.tensor([[30.0, 40.0, 90.0, 80.0]]))
    assert result["labels"].tolist() == [1] and result["scores"].tolist() == pytest.approx([0.9])
    nothing = CellDetectorImageProcessor().post_process_object_detection(outputs, 0.95)[0]
    assert len(nothing["boxes"]) == 0


def test_save_load_gives_identical_detections(tiny_detector_dir):
    files = {p.name for p in tiny_detector_dir.iterdir()}
    assert {
        "model.safetensors",
        "config.json",
        "preprocessor_config.json",
        "modeling_cell_detector.py",
        "configuration_cell_detector.py",
        "image_processing_cell_detector.py",
    } <= files
    config = json.loads((tiny_detector_dir / "config.json").read_text())
    assert config["auto_map"]["AutoModelForObjectDetection"] == "modeling_cell_detector.CellDetectorForObjectDetection"
    model = CellDetectorForObjectDetection.from_pretrained(tiny_detector_dir).eval()
    auto = AutoModelForObjectDetection.from_pretrained(tiny_detector_dir).eval()
    assert isinstance(AutoImageProcessor.from_pretrained(tiny_detector_dir), CellDetectorImageProcessor)
    pixels = CellDetectorImageProcessor()(synthetic_field(), return_tensors="pt")
    with torch.inference_mode():
        first, second = model(**pixels), auto(**pixels)
    assert first.detection_mask.any()
    torch.testing.assert_close(first.pred_boxes, second.pred_boxes, rtol=0, atol=0)
    torch.testing.assert_close(first.scores, second.scores, rtol=0, atol=0)


REMOTE_PIPELINE = textwrap.dedent(
    """
    import json, sys
    from transformers import pipeline
    detector = pipeline("object-detection", model=sys.argv[1], trust_remote_code=True)
    found = detector(sys.argv[2], threshold=float(sys.argv[3]))
    print(json.dumps({"found": found, "imported_cervix_hf": any(m.startswith("cervix_hf") for m in sys.modules)}))
    """
)


def test_pipeline_in_fresh_process_returns_the_same_boxes_as_direct_use(tiny_detector_dir, tmp_path):
    image_path = tmp_path / "field.png"
    synthetic_field(size=(300, 200)).save(image_path)
    script = tmp_path / "pipe.py"
    script.write_text(REMOTE_PIPELINE)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"))
    model = CellDetectorForObjectDetection.from_pretrained(tiny_detector_dir).eval()
    processor = CellDetectorImageProcessor.from_pretrained(tiny_detector_dir)
    direct = detect_cells(model, processor, image_path, threshold=0.0)
    threshold = sorted(d.score for d in direct)[len(direct) // 2]  # a threshold that keeps about half
    result = subprocess.run(
        [sys.executable, str(script), str(tiny_detector_dir), str(image_path), str(threshold)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "is not supported for" not in result.stderr, result.stderr[-3000:]  # loads without transformers' error
    remote = json.loads(result.stdout.strip().splitlines()[-1])
    assert remote["imported_cervix_hf"] is False
    expected = [d for d in direct if d.score > threshold]
    assert len(remote["found"]) == len(expected) > 0
    for got, want in zip(remote["found"], expected):
        assert got["label"] == want.label and got["score"] == pytest.approx(want.score, abs=1e-5)
        # the pipeline rounds boxes to whole pixels
        assert [got["box"][k] for k in ("xmin", "ymin", "xmax", "ymax")] == [int(v) for v in want.box]


def test_detected_boxes_are_in_original_image_pixels(tiny_detector_dir):
    """The model resizes internally (min_size 256); boxes must come back in the caller's pixels."""
    model = CellDetectorForObjectDetection.from_pretrained(tiny_detector_dir).eval()
    processor = CellDetectorImageProcessor()
    image = synthetic_field(size=(640, 512))
    outputs = model(**processor(image, return_tensors="pt"))
    boxes = outputs.pred_boxes[outputs.detection_mask]
    assert boxes.numel() > 0
    assert (boxes[:, 2] <= 640 + 1e-3).all() and (boxes[:, 3] <= 512 + 1e-3).all()
    assert np.allclose(outputs.image_sizes[0].tolist(), [512, 640])


@pytest.mark.slow
def test_a_drawn_cell_is_found_where_it_was_drawn_after_resize_and_post_processing():
    """Train the tiny detector briefly on bright discs; on a 512 px image (resized to 256 inside the model) the best
    detection must cover the disc in the original image's pixels."""
    import random

    from torchvision.ops import box_iou

    def field(size, box):
        image = Image.new("RGB", size, (30, 30, 30))
        ImageDraw.Draw(image).ellipse(box, fill=(230, 230, 230))
        return image

    torch.manual_seed(0)
    rng = random.Random(0)
    model = CellDetectorForObjectDetection(cell_detector_config("tiny", id2label={0: "cell"}))
    processor = CellDetectorImageProcessor()
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    model.train()
    for _ in range(60):
        images, annotations = [], []
        for _ in range(2):
            x, y, size = rng.randint(10, 180), rng.randint(10, 180), rng.randint(30, 60)
            images.append(field((256, 256), (x, y, x + size, y + size)))
            annotations.append({"boxes": [[x, y, x + size + 1, y + size + 1]], "class_labels": [0]})
        loss = model(**processor(images, annotations=annotations, return_tensors="pt")).loss
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    drawn = (200, 120, 300, 220)
    found = detect_cells(model, processor, field((512, 512), drawn), threshold=0.0)
    assert found, "nothing detected"
    best = max(found, key=lambda detection: detection.score)
    iou = box_iou(torch.tensor([best.box]), torch.tensor([[200.0, 120.0, 301.0, 221.0]]))[0, 0]
    assert iou > 0.6, (best, float(iou))
