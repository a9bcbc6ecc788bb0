"""The weights' moving average (`--ema-decay`): it follows its formula step by step, replaces the trained weights
when training ends, travels in every checkpoint, and a resumed run ends with the average an uninterrupted run ends
with."""

import pytest
import torch
from safetensors.torch import load_file
from torch import nn
from torch.utils.data import Dataset
from transformers import TrainerCallback, TrainingArguments

from train.engine import WEIGHT_AVERAGE_NAME, CervixTrainer, WeightAverage


class TinyClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 3)
        self.norm = nn.BatchNorm1d(3)  # floating buffers (averaged) and an integer one (copied)

    def forward(self, inputs, labels=None):
        logits = self.norm(self.linear(inputs))
        return {"loss": nn.functional.cross_entropy(logits, labels), "logits": logits}


class Points(Dataset):
    def __init__(self, size: int = 32):
        generator = torch.Generator().manual_seed(0)
        self.inputs = torch.randn(size, 4, generator=generator)
        self.labels = torch.randint(0, 3, (size,), generator=generator)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return {"inputs": self.inputs[index], "labels": self.labels[index]}


class RecordWeights(TrainerCallback):
    """The model's weights after every optimizer step, as the trainer leaves them."""

    def __init__(self):
        self.steps = []

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.steps.append({name: value.detach().clone() for name, value in model.state_dict().items()})


class StopAfter(TrainerCallback):
    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_training_stop = True


def expected_average(steps: list[dict], decay: float) -> dict:
    """The moving average of `steps` by its definition: the first step's weights, then for step t >= 1
    `d_t * average + (1 - d_t) * weights_t`, d_t = min(decay, (1 + t) / (10 + t)); integer buffers as last seen."""
    average = {name: value.double() for name, value in steps[0].items()}
    for t, weights in enumerate(steps[1:], start=1):
        d = min(decay, (1 + t) / (10 + t))
        for name, value in weights.items():
            average[name] = d * average[name] + (1 - d) * value.double() if value.is_floating_point() else value
    return average


def assert_same_weights(actual: dict, expected: dict):
    assert actual.keys() == expected.keys()
    for name in expected:
        torch.testing.assert_close(actual[name].double(), expected[name].double(), rtol=1e-5, atol=1e-6, msg=name)


def test_the_average_folds_each_step_in_by_its_warmed_up_decay():
    model = TinyClassifier()
    average = WeightAverage(0.95)
    steps = []
    for step in range(30):
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.add_(torch.randn_like(parameter))
            model.norm.running_mean.add_(1.0)
            model.norm.num_batches_tracked.add_(1)
        steps.append({name: value.clone() for name, value in model.state_dict().items()})
        average.update(model, step)
    assert_same_weights(average.state, expected_average(steps, 0.95))
    assert average.state["norm.num_batches_tracked"].item() == 30  # integer buffers are copied, not averaged
    # the decay reached its ceiling: the average lags far behind the last weights
    assert not torch.allclose(average.state["linear.weight"], model.linear.weight)


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.5])
def test_a_decay_outside_the_open_interval_is_refused(decay):
    with pytest.raises(ValueError, match=f"decay must be in \\(0, 1\\), got {decay}"):
        WeightAverage(decay)


def _trainer(tmp_path, decay: float, max_steps: int, recorder: RecordWeights | None = None) -> CervixTrainer:
    torch.manual_seed(0)
    arguments = TrainingArguments(
        output_dir=str(tmp_path),
        use_cpu=True,
        report_to=[],
        per_device_train_batch_size=4,
        learning_rate=0.1,
        max_steps=max_steps,
        save_strategy="steps",
        save_steps=5,
        logging_strategy="no",
        disable_tqdm=True,
        seed=0,
        dataloader_num_workers=0,
    )
    return CervixTrainer(
        model=TinyClassifier(),
        args=arguments,
        train_dataset=Points(),
        callbacks=[recorder] if recorder else None,
        weight_average_decay=decay,
    )


def test_training_ends_with_the_average_and_saves_it_in_every_checkpoint(tmp_path):
    recorder = RecordWeights()
    trainer = _trainer(tmp_path, decay=0.8, max_steps=12, recorder=recorder)
    trainer.train()
    assert len(recorder.steps) == 12
    assert_same_weights(trainer.model.state_dict(), expected_average(recorder.steps, 0.8))
    assert not torch.allclose(trainer.model.linear.weight, recorder.steps[-1]["linear.weight"])  # not the last
    saved = load_file(tmp_path / "checkpoint-10" / WEIGHT_AVERAGE_NAME)
    assert_same_weights(saved, expected_average(recorder.steps[:10], 0.8))


def test_without_a_decay_training_ends_with_the_trained_weights(tmp_path):
    recorder = RecordWeights()
    trainer = _trainer(tmp_path, decay=0.0, max_steps=6, recorder=recorder)
    trainer.train()
    assert_same_weights(trainer.model.state_dict(), recorder.steps[-1])
    assert not (tmp_path / "checkpoint-5" / WEIGHT_AVERAGE_NAME).exists()


def test_a_resumed_run_ends_with_the_average_of_the_whole_run(tmp_path):
    whole = _trainer(tmp_path / "whole", decay=0.8, max_steps=12)
    whole.train()

    first = _trainer(tmp_path / "resumed", decay=0.8, max_steps=12)
    first.add_callback(StopAfter(5))  # killed after its first checkpoint
    first.train()
    assert not (tmp_path / "resumed" / "checkpoint-10").exists()
    resumed = _trainer(tmp_path / "resumed", decay=0.8, max_steps=12)
    resumed.train(resume_from_checkpoint=str(tmp_path / "resumed" / "checkpoint-5"))
    assert_same_weights(resumed.model.state_dict(), whole.model.state_dict())
