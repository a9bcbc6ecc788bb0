"""What a published model's repo holds names no folder of the machine that trained it: a run trained as a user
trains it, staged as `push_to_hub --dry-run` stages it, holds neither the temporary folder, the home folder, the
checkout, nor where the data lies; the data set is named by its folder's name."""

import json
import tempfile
from pathlib import Path

import pytest

from train import push_to_hub as push_to_hub_command
from train import train_cell_detector, train_colponet, train_prepost_fusion

from .conftest import SHARED_DATA, require_data

REPOSITORY = Path(__file__).resolve().parents[1]
COMMON = ["--model-size", "tiny", "--batch-size", "8", "--workers", "0", "--no-progress-bar", "--augmentation", "flip"]
# model type -> (training script, data set folder under the shared data, arguments besides --data/--output-dir)
RUNS = {
    "colponet": (train_colponet, "intel-mobileodt-sample", ["--stage1-epochs", "1", "--stage2-epochs", "0"]),
    "cell_detector": (
        train_cell_detector,
        "isbi2014-edf",
        ["--epochs", "1", "--min-size", "256", "--max-size", "256", "--test-names", "EDF010", "EDF011"],
    ),
    "prepost_fusion": (
        train_prepost_fusion,
        "iarc-colposcopy-atlas",
        ["--stage1-epochs", "1", "--stage2-epochs", "0", "--decision-threshold", "balanced"],
    ),
}


def local_folders(*more: Path) -> set[str]:
    """The folders of this machine that a published file must not name, as given and resolved."""
    folders = {Path(tempfile.gettempdir()), Path.home(), REPOSITORY, *more}
    return {str(form) for folder in folders for form in (folder, folder.resolve())} - {"/"}


@pytest.mark.slow
@pytest.mark.parametrize("model_type", RUNS)
def test_staged_files_name_no_local_folder(model_type, tmp_path, tiny_colponet_dir, capsys):
    script, dataset, settings = RUNS[model_type]
    data = require_data(SHARED_DATA / dataset).resolve()
    output_dir = tmp_path / "run"
    argv = ["--data", str(data), "--output-dir", str(output_dir), *COMMON, *settings]
    if model_type == "colponet":  # a run that starts from a saved model names that folder too
        argv += ["--from-checkpoint", str(tiny_colponet_dir)]
    script.main(script.get_args_parser().parse_args(argv))
    staging = tmp_path / "staged"
    command = ["--model-dir", str(output_dir), "--repo-id", "tester/x", "--dry-run", "--staging-dir", str(staging)]
    assert push_to_hub_command.main(command) == 0
    capsys.readouterr()

    forbidden = local_folders(tmp_path, output_dir, data.parent, tiny_colponet_dir)
    checked = []
    for path in sorted(path for path in staging.rglob("*") if path.is_file()):
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:  # the weights
            continue
        checked.append(path.name)
        named = sorted(folder for folder in forbidden if folder in text)
        assert not named, f"the published {path.name} names {named}"
    assert {"README.md", "eval_results.json", "training_args.json", "config.json"} <= set(checked), checked

    eval_results = json.loads((staging / "eval_results.json").read_text())
    assert eval_results["data"]["source"] == dataset
    assert f"`{dataset}`" in (staging / "README.md").read_text()
    training_args = json.loads((staging / "training_args.json").read_text())
    assert training_args["data"] == dataset and training_args["output_dir"] == "."
    if model_type == "colponet":
        assert training_args["from_checkpoint"] == tiny_colponet_dir.name
        # Each test photo is named inside the data set, so anyone holding it finds the photo.
        for row in eval_results["predictions"]:
            assert row["path"].startswith(f"{dataset}/") and (data.parent / row["path"]).is_file()
