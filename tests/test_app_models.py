"""Where the app's models come from (flag, environment, checkpoints folder, Hub, untrained) and its example images."""

import dataclasses
import re
import shutil
import threading
import time

import numpy as np
import pytest

from cervix_hf.app import models as app_models
from cervix_hf.app.models import (
    TASKS_BY_NAME,
    UNTRAINED_WARNING,
    AppModels,
    ModelSlot,
    parse_model_reference,
    requested_models,
)
from cervix_hf.commands import module_command
from cervix_hf.data.examples import find_examples
from cervix_hf.hub import ModelReferenceError
from cervix_hf.prediction.inference import ModelLoadError

from .conftest import SHARED_DATA, require_data

COLPONET = TASKS_BY_NAME["colponet"]


def test_flags_win_over_environment_variables():
    environ = {"CERVIX_HF_COLPONET": "from/env", "CERVIX_HF_PREPOST_FUSION": "/models/prepost", "OTHER": "x"}
    requested = requested_models({"colponet": "from/flag", "cell_detector": None}, environ)
    assert requested == {"colponet": "from/flag", "prepost_fusion": "/models/prepost"}
    assert [task.flag for task in TASKS_BY_NAME.values()] == [
        "--colponet",
        "--cell-detector",
        "--prepost-fusion",
        "--cell-classifier",
    ]
    assert [task.env_var for task in TASKS_BY_NAME.values()] == [
        "CERVIX_HF_COLPONET",
        "CERVIX_HF_CELL_DETECTOR",
        "CERVIX_HF_PREPOST_FUSION",
        "CERVIX_HF_CELL_CLASSIFIER",
    ]


def test_the_aliases_still_reach_a_model(tmp_path):
    """Space variables, flags and checkpoint folders saved before every name followed the model type still work."""
    from cervix_hf import PrePostFusionForImageClassification, PrePostFusionImageProcessor
    from cervix_hf.app import get_args_parser
    from cervix_hf.registry import prepost_config

    prepost = TASKS_BY_NAME["prepost_fusion"]
    assert requested_models({}, {"CERVIX_HF_PREPOST": "old/env"}) == {"prepost_fusion": "old/env"}
    both = {"CERVIX_HF_PREPOST": "old/env", "CERVIX_HF_PREPOST_FUSION": "new/env"}
    assert requested_models({}, both) == {"prepost_fusion": "new/env"}
    assert get_args_parser().parse_args(["--prepost", "old/flag"]).prepost_fusion == "old/flag"
    former = tmp_path / "checkpoints" / "prepost"  # where `train_prepost --output-dir checkpoints/prepost` wrote
    PrePostFusionForImageClassification(prepost_config("tiny")).save_pretrained(former)
    PrePostFusionImageProcessor().save_pretrained(former)
    loaded = ModelSlot(prepost, checkpoints_dir=tmp_path / "checkpoints").get()
    assert loaded.trained and loaded.source.location == str(former)
    # the Models tab shows these notes: the folder by its name, never the server's path to it
    assert "local model 'prepost_fusion'" in loaded.notes[0] and "no such folder" in loaded.notes[0]
    assert str(tmp_path) not in loaded.notes[0]


def test_a_reference_is_a_folder_when_it_exists_else_a_hub_id_with_optional_revision(tmp_path, tiny_colponet_dir):
    assert parse_model_reference("someone/colponet@v1.0", "flag") == app_models.ModelSource(
        "hub", "someone/colponet", "v1.0", "flag"
    )
    assert parse_model_reference("someone/colponet", "flag").revision is None
    shutil.copytree(tiny_colponet_dir, tmp_path / "owner" / "name")
    folder = parse_model_reference(str(tmp_path / "owner" / "name"), "flag")
    assert (folder.kind, folder.location, folder.required) == ("folder", str(tmp_path / "owner" / "name"), True)
    with pytest.raises(ModelReferenceError, match="^flag: no/such/folder: no such folder"):
        parse_model_reference("no/such/folder", "flag")


def test_sources_are_tried_in_order_flag_checkpoints_release_hub(tmp_path, tiny_colponet_dir):
    shutil.copytree(tiny_colponet_dir, tmp_path / "checkpoints" / "colponet")
    with pytest.raises(ModelReferenceError, match="--colponet / CERVIX_HF_COLPONET: .*missing: no such folder"):
        ModelSlot(COLPONET, requested=str(tmp_path / "missing"), checkpoints_dir=tmp_path / "checkpoints")
    slot = ModelSlot(COLPONET, requested=str(tiny_colponet_dir), checkpoints_dir=tmp_path / "checkpoints")
    plan = slot.resolve()
    assert [source.origin for source, _ in plan] == [
        "--colponet / CERVIX_HF_COLPONET",
        "the training script's folder",
        "the repository's release model",
        "the published repo",
    ]
    assert plan[0][1] is None and plan[1][1] is None and plan[2][1] == "no such folder"
    assert "HF_HUB_OFFLINE is set" in plan[3][1]  # conftest switches the Hub off
    unflagged = ModelSlot(COLPONET, checkpoints_dir=tmp_path / "checkpoints")
    loaded = unflagged.get()
    assert loaded.trained and loaded.source.location == str(tmp_path / "checkpoints" / "colponet")
    assert "will load from local folder" in unflagged.plan_message()


def test_nothing_to_load_gives_the_untrained_default_and_says_how_to_get_weights(tmp_path):
    broken = tmp_path / "colponet"  # the training script's folder, broken: it falls through (a flag's would stop)
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    slot = ModelSlot(COLPONET, checkpoints_dir=tmp_path, untrained_size="tiny")
    message = slot.plan_message()  # the broken folder looks available until its weights are read
    assert message.startswith("ColpoNet: cervix type (Type 1/2/3): will load from local folder")
    loaded = slot.get()
    assert not loaded.trained and loaded.warning == UNTRAINED_WARNING
    assert loaded.source.describe() == "untrained default configuration"
    assert "could not be loaded" in loaded.notes[0]
    empty = ModelSlot(COLPONET, checkpoints_dir=tmp_path / "none", untrained_size="tiny")
    message = empty.plan_message()
    assert "no trained weights found" in message and "UNTRAINED" in message
    assert f"{module_command('train.train_colponet')} --data DATA" in message and "CERVIX_HF_COLPONET" in message
    assert not re.search(r"\(python -m", message)  # a bare `python` may be another interpreter, without torch


def test_an_unreachable_hub_fails_fast(monkeypatch, tmp_path):
    # Online mode, but the Hub's address refuses connections (a closed loopback port): no hang, a reason instead.
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", "http://127.0.0.1:9")
    slot = ModelSlot(COLPONET, checkpoints_dir=tmp_path, hub_timeout=2.0)
    start = time.monotonic()
    (_, hub_reason) = slot.resolve()[-1]
    assert time.monotonic() - start < 10
    assert hub_reason.startswith("the Hub did not provide it (ConnectError"), hub_reason


def test_a_model_loads_once_however_many_requests_ask_at_once(tmp_path, tiny_colponet_dir):
    calls = []

    def counting_load(model_id, revision):
        calls.append(model_id)
        time.sleep(0.2)  # let every thread arrive while the first one loads
        return COLPONET.load(model_id, revision)

    slot = ModelSlot(dataclasses.replace(COLPONET, load=counting_load), requested=str(tiny_colponet_dir))
    loaded = []
    threads = [threading.Thread(target=lambda: loaded.append(slot.get())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(calls) == 1 and len(loaded) == 8 and all(model is loaded[0] for model in loaded)


def test_app_models_reject_unknown_tasks():
    with pytest.raises(ValueError, match="Unknown task"):
        AppModels.from_settings({"segmenter": "x"})


def test_examples_are_found_in_the_shared_data_layout():
    require_data(SHARED_DATA)
    examples = find_examples(SHARED_DATA)
    assert [path.split("/")[-2] for path in examples.cervix_type] == ["Type_1", "Type_2", "Type_3"]
    assert [path.split("/")[-1] for path in examples.cells] == ["EDF000.png", "EDF001.png", "EDF002.png"]
    assert len(examples.prepost) == 3
    for pre, post in examples.prepost:
        assert pre.endswith("_After_normal_saline.jpg") and post.endswith("_After_acetic_acid.jpg")
    case_aaan = examples.prepost[0]  # views 2 (saline), then 3 and 4 (acetic acid): the first of each
    assert case_aaan[0].endswith("case_AAAN/2_After_normal_saline.jpg")
    assert case_aaan[1].endswith("case_AAAN/3_After_acetic_acid.jpg")


def test_examples_are_optional_and_sipakmed_clusters_count_as_cells(tmp_path):
    assert find_examples(None) == find_examples(tmp_path / "missing") == find_examples(tmp_path)
    cluster = tmp_path / "im_Parabasal" / "im_Parabasal"
    (cluster / "CROPPED").mkdir(parents=True)
    for path in (cluster / "001.bmp", cluster / "CROPPED" / "001_01.bmp"):
        path.write_bytes(b"BM")
    assert find_examples(tmp_path).cells == [str(cluster / "001.bmp")]


def test_a_model_of_another_type_stops_a_flag_and_falls_through_elsewhere(tmp_path, tiny_colponet_dir):
    from cervix_hf import PrePostFusionForImageClassification, PrePostFusionImageProcessor
    from cervix_hf.registry import prepost_config

    wrong = tmp_path / "checkpoints" / "colponet"
    PrePostFusionForImageClassification(prepost_config("tiny")).save_pretrained(wrong)
    PrePostFusionImageProcessor().save_pretrained(wrong)
    flagged = AppModels({"colponet": ModelSlot(COLPONET, requested=str(wrong), checkpoints_dir=tmp_path / "none")})
    with pytest.raises(ModelLoadError, match="--colponet / CERVIX_HF_COLPONET: .*'prepost_fusion' model, not"):
        flagged.load_requested()
    loaded = ModelSlot(COLPONET, checkpoints_dir=tmp_path / "checkpoints", untrained_size="tiny").get()
    assert not loaded.trained and "'prepost_fusion' model, not 'colponet'" in loaded.notes[0]


def test_warming_up_loads_and_runs_every_model_once(tmp_path):
    models = AppModels.from_settings(checkpoints_dir=tmp_path / "none", untrained_size="tiny")
    runs = []
    for slot in models:
        slot.get().model.register_forward_hook(lambda module, *_: runs.append(module.config.model_type))
    models.warm_up()
    assert sorted(runs) == sorted(task.model_type for task in TASKS_BY_NAME.values())


def test_the_models_tab_shows_a_local_model_s_evaluation_plots(tmp_path):
    from cervix_hf.app.models_tab import model_plots

    from .model_runs import colponet_run

    run = colponet_run(tmp_path / "run")  # a training run: it drew its plots
    slot = ModelSlot(TASKS_BY_NAME["colponet"], str(run), tmp_path / "none", "tiny", hub_timeout=0.1)
    assert model_plots(slot) == [(str(run / "plots" / "confusion_matrix.png"), "Confusion matrix")]
    untrained = ModelSlot(TASKS_BY_NAME["colponet"], None, tmp_path / "none", "tiny", hub_timeout=0.1)
    assert model_plots(untrained) == []


@pytest.mark.parametrize("run", ["colponet_run", "prepost_run", "detector_run"])
def test_the_models_tab_gives_the_evaluation_with_its_size_and_interval_not_just_trained(tmp_path, run):
    import json

    from scipy.stats import binomtest

    from cervix_hf.app.models_tab import describe_model

    from . import model_runs

    folder = getattr(model_runs, run)(tmp_path / "run")
    results = json.loads((folder / "eval_results.json").read_text())
    task = {"colponet_run": "colponet", "prepost_run": "prepost_fusion", "detector_run": "cell_detector"}[run]
    text = describe_model(ModelSlot(TASKS_BY_NAME[task], str(folder), tmp_path / "none", "tiny", hub_timeout=0.1))
    assert "**Trained:** yes" not in text
    metrics = results["metrics"]

    def interval(successes, total):
        ci = binomtest(successes, total).proportion_ci(method="wilson")
        return f"95% interval {ci.low:.2f}-{ci.high:.2f}"

    if task == "colponet":
        matrix = np.array(metrics["confusion_matrix"])
        hits, total = int(np.trace(matrix)), int(matrix.sum())
        assert (
            f"**Evaluation:** accuracy {hits / total:.2f} ({interval(hits, total)}) on {total} test photos of "
            f"{results['data']['source']} (chance: 0.33)"
        ) in text
    elif task == "prepost_fusion":
        (tn, fp), (fn, tp) = metrics["report"]["confusion_matrix"]
        assert f"sensitivity {tp / (tp + fn):.2f} ({interval(tp, tp + fn)}) on {tp + fn} Positive" in text
        assert f"specificity {tn / (tn + fp):.2f} ({interval(tn, tn + fp)}) on {tn + fp} Negative test cases" in text
    else:
        assert f"**Evaluation:** mAP@.5 {metrics['map_50']:.2f} on {metrics['num_images']} test images" in text


def test_the_fusion_tab_offers_only_the_operating_points_the_model_defines(tmp_path):
    import json

    from scipy.stats import binomtest

    from cervix_hf.app.prepost_fusion_tab import operating_point_choices

    from .model_runs import prepost_run

    folder = prepost_run(tmp_path / "run")
    loaded = ModelSlot(TASKS_BY_NAME["prepost_fusion"], str(folder), tmp_path / "none", "tiny", hub_timeout=0.1).get()
    choices = operating_point_choices(loaded)
    points = loaded.model.config.operating_points
    offered = [name for name in ("screening", "balanced", "confirmatory") if points[name]["threshold"] is not None]
    assert [value for _, value in choices] == ["model default", *offered, "custom threshold"]
    counts = json.loads((folder / "eval_results.json").read_text())["data"]["class_counts"]["validation"]
    for label, name in choices[1:-1]:
        sensitivity, positive = points[name]["sensitivity"], counts["Positive"]
        ci = binomtest(round(sensitivity * positive), positive).proportion_ci(method="wilson")
        assert f"sensitivity {sensitivity:.2f} (95% interval {ci.low:.2f}-{ci.high:.2f}, {positive} Positive)" in label

    untrained = ModelSlot(TASKS_BY_NAME["prepost_fusion"], None, tmp_path / "none", "tiny", hub_timeout=0.1).get()
    assert [value for _, value in operating_point_choices(untrained)] == ["model default", "custom threshold"]
