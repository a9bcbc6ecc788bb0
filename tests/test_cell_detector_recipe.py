"""The detector settings that the nuclei recipe uses: input at its own scale, batch norm trained from random
weights, the stem trained, the samplers' sizes, and the named size and augmentation that hold them."""

import PIL.Image
import pytest
import torch

from cervix_hf import CellDetectorConfig, CellDetectorForObjectDetection, CellDetectorModel
from cervix_hf.registry import cell_detector_config
from train.presets import detection_train_transform


def test_keep_input_scale_feeds_images_at_their_own_size():
    pixel_values = torch.rand(1, 3, 160, 224)
    resized = CellDetectorModel(cell_detector_config("tiny", min_size=256, max_size=256)).eval()
    native = CellDetectorModel(cell_detector_config("tiny", keep_input_scale=True)).eval()
    assert resized(pixel_values).image_sizes.tolist() == [[182, 256]]  # long side to max_size
    assert native(pixel_values).image_sizes.tolist() == [[160, 224]]
    assert native(pixel_values).feature_maps[0].shape[-2:] == (40, 56)  # stride 4 over the input itself


def test_boxes_stay_in_input_pixels_with_keep_input_scale():
    torch.manual_seed(0)
    model = CellDetectorForObjectDetection(cell_detector_config("tiny", keep_input_scale=True)).eval()
    output = model(pixel_values=torch.rand(1, 3, 96, 300))
    boxes = output.pred_boxes[output.detection_mask]
    assert output.image_sizes.tolist() == [[96, 300]]
    assert (boxes[:, 2] <= 300).all() and (boxes[:, 3] <= 96).all()


def test_unfrozen_batch_norm_trains_with_its_stage_and_the_stem_can_train():
    config = cell_detector_config("tiny", freeze_batch_norm=False, trainable_backbone_stages=2)
    model = CellDetectorForObjectDetection(config).train()
    body = model.detector.backbone.body
    late = [m for m in body.encoder.stages[3].modules() if isinstance(m, torch.nn.BatchNorm2d)]
    early = [m for m in body.encoder.stages[0].modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(m.training and m.weight.requires_grad for m in late)
    assert not any(m.training or m.weight.requires_grad for m in early)  # a frozen stage keeps its statistics

    everything = CellDetectorForObjectDetection(cell_detector_config("tiny", trainable_backbone_stages=5))
    stem = [m for m in everything.detector.backbone.body.embedder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert stem and all(m.weight.requires_grad for m in stem)


def test_sampler_settings_reach_torchvision():
    config = cell_detector_config(
        "tiny",
        rpn_batch_size_per_image=64,
        rpn_positive_fraction=0.4,
        box_batch_size_per_image=128,
        box_positive_fraction=0.5,
    )
    detector = CellDetectorForObjectDetection(config).detector
    assert detector.rpn.fg_bg_sampler.batch_size_per_image == 64
    assert detector.rpn.fg_bg_sampler.positive_fraction == 0.4
    assert detector.roi_heads.fg_bg_sampler.batch_size_per_image == 128
    assert detector.roi_heads.fg_bg_sampler.positive_fraction == 0.5


@pytest.mark.parametrize(
    "argument, value",
    [("rpn_positive_fraction", 1.5), ("box_batch_size_per_image", 0), ("trainable_backbone_stages", 6)],
)
def test_bad_recipe_values_name_the_argument(argument, value):
    with pytest.raises(ValueError, match=argument):
        CellDetectorConfig(**{argument: value})


def test_nuclei_augmentation_crops_without_changing_the_nuclei_size():
    image = PIL.Image.new("RGB", (300, 200), "white")
    boxes = [(40 + 60 * i, 90, 60 + 60 * i, 110) for i in range(4)]  # four 20 px nuclei in a row
    transform = detection_train_transform("nuclei", crop_size=96)
    torch.manual_seed(0)
    for _ in range(20):
        cropped, kept, labels = transform(image, boxes, [0, 1, 2, 3])
        assert cropped.size == (96, 96) and len(kept) == len(labels)
        assert (kept >= 0).all() and (kept <= 96).all()
        sides = kept[:, 2:] - kept[:, :2]
        assert (sides <= 20 + 1e-4).all()  # cut by the crop at most, never zoomed
    assert detection_train_transform("none", crop_size=256)(image, boxes, [0] * 4)[0].size == (256, 256)  # padded


def test_a_recipe_replaces_the_training_defaults_and_a_given_flag_wins():
    from train.detector_recipes import DETECTOR_RECIPES
    from train.train_cell_detector import apply_recipe, get_args_parser

    recipe = DETECTOR_RECIPES["nuclei"]
    parser = get_args_parser()
    args = apply_recipe(parser.parse_args(["--data", "d", "--output-dir", "o", "--recipe", "nuclei", "--epochs", "2"]))
    assert args.epochs == 2  # given on the command line
    assert (args.crop_size, args.crops_per_image, args.lr, args.batch_size, args.augmentation) == (
        recipe.crop_size,
        recipe.crops_per_image,
        recipe.learning_rate,
        recipe.batch_size,
        recipe.augmentation,
    )
    plain = apply_recipe(parser.parse_args(["--data", "d", "--output-dir", "o"]))
    assert (plain.crop_size, plain.crops_per_image, plain.augmentation) == (None, 1, "default")
    config = cell_detector_config(recipe.model_size, **recipe.config)
    assert config.keep_input_scale and not config.freeze_batch_norm and config.trainable_backbone_stages == 5
