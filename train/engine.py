"""The training engine shared by every cervix_hf training script.

Built on transformers' `Trainer`, so one command runs on a CPU, one GPU, or several processes under
`torchrun --nproc_per_node N -m train.<script> ...` or `accelerate launch -m train.<script> ...` (one process per GPU,
or several CPU processes over gloo where there is no GPU).

What it adds to `Trainer`:
- `start_run`: one seed for initialisation, data order and augmentation, set before the model is built; the
  process group joined before any work, and `on_main_process` for work done once (the quality gate) whose result
  every process needs;
- training in named stages (e.g. frozen backbone, then everything), each in its own folder under the output
  directory so `--resume` continues the stage that was interrupted and skips the ones that finished;
- early stopping, best-checkpoint selection and reduce-on-plateau learning rate on one metric;
- a stop with a clear error on a non-finite loss;
- an optional exponential moving average of the weights (`WeightAverage`), saved in every checkpoint and resumed;
- `set_epoch` on a training dataset that has it at the start of every epoch, so augmentation seeded per photo and
  epoch (`cervix_hf.data.SeededAugmentation`) draws anew each epoch, also in a resumed run;
- classifier training on mixup pairs and on class-probability labels (`MixupTrainer`);
- checkpoints written to a temporary folder and renamed to `checkpoint-N` only once complete, so a save cut short
  (a full disk, a killed job) never leaves a `checkpoint-N` that `--resume` would choke on; `--resume` skips, with a
  warning, an incomplete one left by an older version;
- the end of a run: `save_pretrained` of model and processor, `eval_results.json`, `training_args.json` and the
  model card `README.md` (`cervix_hf.hub.cards`), written by the main process alone once every process is done;
  these files are published, so they name local paths only through `published_path`.
"""

import argparse
import json
import logging
import math
import os
import re
import shlex
import shutil
import sys
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

import torch
from accelerate import PartialState
from accelerate.utils import broadcast_object_list
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import EarlyStoppingCallback, Trainer, TrainerCallback, TrainingArguments, set_seed
from transformers.trainer import TRAINER_STATE_NAME
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints
from transformers.utils import SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME, WEIGHTS_INDEX_NAME, WEIGHTS_NAME

from cervix_hf.commands import module_command
from cervix_hf.evaluation.plots import write_evaluation_plots
from cervix_hf.evaluation.results import EvalResults, StageSummary, software_versions, write_json
from cervix_hf.hub.cards import ModelCardError, write_model_card
from cervix_hf.io.files import EVAL_RESULTS_FILE, TRAINING_ARGS_FILE, give_default_mode

from .arguments import SCHEDULES, RunConfig, validate_common_args

logger = logging.getLogger(__name__)

STAGE_DONE_FILE = "stage_done.json"
# A checkpoint is written under `.tmp-checkpoint-N/` and moved to `checkpoint-N` once complete: a name that
# transformers' `get_last_checkpoint` and checkpoint rotation never pick up.
STAGING_PREFIX = ".tmp-"
CHECKPOINT_NAME = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")
WEIGHTS_FILES = (SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME, WEIGHTS_NAME, WEIGHTS_INDEX_NAME)


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or infinite loss."""


@dataclass
class TrainingStage:
    """One stage of training.

    Args:
        name (`str`): folder name of the stage under the output directory.
        learning_rate (`float`): initial learning rate.
        epochs (`float`): number of epochs (0 skips the stage).
        train_backbone (`bool`): whether the backbone's parameters are trained in this stage.
        batch_size (`int`, *optional*): per-device batch size of this stage (default: `--batch-size`).
        schedule (`str`, *optional*, defaults to `"plateau"`): `"plateau"`: the learning rate is cut 10x after
            `--plateau-patience` evaluations without improvement, training stops early after
            `--early-stopping-patience`, and the best checkpoint on the metric is kept; `"cosine"`: a linear warm-up
            over the first `warmup_ratio` of the steps, then a cosine decay to 0 over the fixed number of epochs,
            and the last weights are kept (the validation split is evaluated each epoch, never used to choose).
        warmup_ratio (`float`, *optional*, defaults to 0.1): the share of the steps warmed up under `"cosine"`.
    """

    name: str
    learning_rate: float
    epochs: float
    train_backbone: bool
    batch_size: int | None = None
    schedule: str = "plateau"
    warmup_ratio: float = 0.1

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise ValueError(f"Unknown schedule {self.schedule!r} of stage {self.name}; choose one of {SCHEDULES}.")


def _cpu_processes() -> bool:
    """Several processes and no GPU: accelerate runs them over gloo only when told to use the CPU (otherwise every
    process trains alone on the whole data set and writes the same files)."""
    return not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1


def start_run(args: argparse.Namespace | RunConfig) -> PartialState:
    """
    What every training script does first: checks the common arguments, joins the process group (under `torchrun`
    or `accelerate launch`), logs at INFO (with each process's rank when there are several), and seeds Python,
    NumPy and torch with `--seed` before anything random happens, so model initialisation, data order and
    augmentation all follow the seed.
    """
    config = RunConfig.from_args(args)
    validate_common_args(config)
    state = PartialState(cpu=_cpu_processes())
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s [rank {state.process_index}] %(name)s %(levelname)s %(message)s"
        if state.num_processes > 1
        else "%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    set_seed(config.seed)
    return state


def on_main_process(state: PartialState, function: Callable[[], Any]) -> Any:
    """Runs `function` on the main process alone and returns its result (or raises its error) on every process."""
    outcome = [None]
    if state.is_main_process:
        try:
            outcome = [(True, function())]
        except BaseException as err:  # every process must learn of it, or the others wait forever
            outcome = [(False, err)]
    if state.num_processes > 1:
        broadcast_object_list(outcome, from_process=0)
    succeeded, value = outcome[0]
    if not succeeded:
        raise value
    return value


WEIGHT_AVERAGE_NAME = "weight_average.safetensors"


class WeightAverage:
    """
    An exponential moving average of a model's weights: its floating-point parameters and buffers (batch-norm
    statistics) averaged step by step, its integer buffers copied.

    Args:
        decay (`float`): the average's per-step decay, in (0, 1); it warms up as `min(decay, (1 + step) / (10 +
            step))`, so the first steps' weights (the random initialisation) do not linger in the average.
    """

    def __init__(self, decay: float):
        if not 0 < decay < 1:
            raise ValueError(f"The weight average's decay must be in (0, 1), got {decay}.")
        self.decay = decay
        self.state: dict[str, torch.Tensor] | None = None

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        """Folds `model`'s weights after optimizer step `step` (from 0) into the average; the first call starts it."""
        if self.state is None:
            self.state = {name: value.detach().clone() for name, value in model.state_dict().items()}
            return
        decay = min(self.decay, (1 + step) / (10 + step))
        for name, value in model.state_dict().items():
            if value.dtype.is_floating_point:
                self.state[name].mul_(decay).add_(value.detach(), alpha=1 - decay)
            else:
                self.state[name].copy_(value)


class _WeightAverageCallback(TrainerCallback):
    def __init__(self, average: WeightAverage):
        self.average = average

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.average.update(model, state.global_step - 1)


class _EpochCallback(TrainerCallback):
    """Tells the training dataset which epoch begins (`set_epoch`), also in a run resumed mid-epoch, and also where
    the data loader does not (several processes)."""

    def __init__(self, dataset):
        self.dataset = dataset

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.dataset.set_epoch(math.floor(state.epoch + 1e-9))


class CervixTrainer(Trainer):
    """
    `Trainer` that stops at the first non-finite loss instead of training on garbage, and that writes each
    checkpoint completely before it takes the name `checkpoint-N` (see `_save_checkpoint`).

    Args:
        weight_average_decay (`float`): with a value in (0, 1), keep an exponential moving average of the weights
            (`WeightAverage`), save it in every checkpoint (`weight_average.safetensors`, which `--resume` reads
            back) and load it into the model when training ends, in place of the last (or best) weights; 0 keeps
            the weights as trained.
    """

    _staging_dir: Path | None = None

    def __init__(self, *args, weight_average_decay: float = 0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.weight_average = WeightAverage(weight_average_decay) if weight_average_decay else None
        if self.weight_average is not None:
            self.add_callback(_WeightAverageCallback(self.weight_average))

    def train(self, resume_from_checkpoint=None, **kwargs):
        average = self.weight_average
        if average is not None and resume_from_checkpoint:
            saved = Path(resume_from_checkpoint) / WEIGHT_AVERAGE_NAME
            if saved.is_file():
                average.state = load_file(saved, device=str(self.args.device))
            else:
                logger.warning("%s has no weight average: it starts again from the resumed weights.", saved.parent)
        result = super().train(resume_from_checkpoint=resume_from_checkpoint, **kwargs)
        if average is not None and average.state is not None:
            self.model.load_state_dict(average.state)
        return result

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        if not torch.isfinite(loss).all():
            raise NonFiniteLossError(
                f"Non-finite training loss ({loss.item()}) at step {self.state.global_step}: lower the learning "
                "rate, check the data for corrupt images or labels, or resume from the last good checkpoint."
            )
        return loss

    def _get_output_dir(self, trial) -> str:
        # While a checkpoint is saved, `Trainer._save_checkpoint` writes `<this folder>/checkpoint-N`.
        return str(self._staging_dir) if self._staging_dir is not None else super()._get_output_dir(trial)

    def _save_checkpoint(self, model, trial) -> None:
        """
        `Trainer._save_checkpoint`, writing into `.tmp-checkpoint-N/checkpoint-N` (weights, optimizer, scheduler,
        RNG state, `trainer_state.json` last) and moving the finished folder to `checkpoint-N`: a save cut short
        leaves only the temporary folder, which `--resume` skips and the next save of that step replaces.
        """
        run_dir = Path(super()._get_output_dir(trial))
        final = run_dir / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        staging = run_dir / f"{STAGING_PREFIX}{final.name}"
        staged = staging / final.name
        if self.args.should_save:
            shutil.rmtree(staging, ignore_errors=True)  # left by a save of this step that was cut short
        self.accelerator.wait_for_everyone()
        self._staging_dir = staging
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self._staging_dir = None
        if self.weight_average is not None and self.weight_average.state is not None and self.args.should_save:
            save_file(
                {name: value.contiguous() for name, value in self.weight_average.state.items()},
                staged / WEIGHT_AVERAGE_NAME,
            )
        # Trainer records the best checkpoint under the folder it wrote: give it the name it is about to take.
        if self.state.best_model_checkpoint == str(staged):
            self.state.best_model_checkpoint = str(final)
            if self.args.should_save:
                self.state.save_to_json(str(staged / TRAINER_STATE_NAME))
        self.accelerator.wait_for_everyone()  # every process has written its RNG state into the staged folder
        if self.args.should_save:
            if final.exists():  # an incomplete one, left by an older version
                shutil.rmtree(final)
            staged.rename(final)
            staging.rmdir()
            # Trainer rotated the temporary folder; the checkpoints to keep or delete are beside the new one.
            rotate_checkpoints(
                output_dir=str(run_dir),
                save_total_limit=self.args.save_total_limit,
                best_model_checkpoint=self.state.best_model_checkpoint,
                use_mtime=True,
            )
        self.accelerator.wait_for_everyone()  # no process goes on before the checkpoint has its name


class MixupTrainer(CervixTrainer):
    """
    `CervixTrainer` for classifiers that trains on mixup pairs (Zhang et al., 2018) and on probability targets.

    With mixup, each training batch is blended with a shuffled copy of itself, `lam * x + (1 - lam) * x[perm]` with
    `lam ~ Beta(alpha, alpha)`, and the loss is the cross-entropy against the same blend of both targets. A target is
    the one-hot vector of an integer label, or a batch's `labels` as given when they are class probabilities (`(N,
    num_labels)` floats: a teacher's soft labels, `DecodedImageDataset(soft_labels=...)`). The loss has the run's
    label smoothing and the model's `config.class_weights`. Evaluation and prediction see the images as they are.

    Args:
        mixup_alpha (`float`): the Beta distribution's parameter; 0 trains on the images as they are.
    """

    def __init__(self, *args, mixup_alpha: float = 0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.mixup_alpha = mixup_alpha

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        soft = inputs["labels"].is_floating_point()
        if not model.training or (self.mixup_alpha <= 0 and not soft):
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        labels = inputs.pop("labels")
        lam, order = 1.0, torch.arange(labels.shape[0], device=labels.device)
        if self.mixup_alpha > 0:
            lam = float(torch.distributions.Beta(self.mixup_alpha, self.mixup_alpha).sample())
            order = torch.randperm(labels.shape[0], device=labels.device)
        pixels = inputs["pixel_values"]
        outputs = model(**{**inputs, "pixel_values": lam * pixels + (1 - lam) * pixels[order]})
        logits = outputs.logits.float()
        target = labels.float() if soft else nn.functional.one_hot(labels, logits.shape[-1]).float()
        targets = lam * target + (1 - lam) * target[order]
        class_weights = getattr(self.model.config, "class_weights", None)
        loss = nn.functional.cross_entropy(
            logits,
            targets,
            weight=torch.tensor(class_weights, device=logits.device) if class_weights else None,
            label_smoothing=self.args.label_smoothing_factor,
        )
        return (loss, outputs) if return_outputs else loss


def last_complete_checkpoint(folder: Path) -> str | None:
    """
    The latest checkpoint in `folder` that `--resume` can continue from, or None. Incomplete ones are skipped with a
    warning naming them: a temporary folder of a save cut short, a `checkpoint-N` without its trainer state or
    weights (as a save cut short by an older version left it), or one with a file that does not load (a truncated
    or corrupt `model.safetensors`, `optimizer.pt`, scheduler or RNG state), so the run goes on from the newest
    checkpoint that loads.
    """
    candidates = []
    for path in sorted(Path(folder).iterdir()):
        if not path.is_dir():
            continue
        if path.name.startswith(STAGING_PREFIX + PREFIX_CHECKPOINT_DIR):
            logger.warning("Ignoring %s: a checkpoint whose save was cut short.", path)
        elif match := CHECKPOINT_NAME.match(path.name):
            candidates.append((int(match.group(1)), path))
    for _, path in sorted(candidates, reverse=True):
        problem = _checkpoint_problem(path)
        if problem is None:
            return str(path)
        logger.warning("Ignoring %s: %s.", path, problem)
    return None


def _checkpoint_problem(path: Path) -> str | None:
    """Why `--resume` cannot continue from the checkpoint folder `path`, or None: every file it holds must load."""
    try:
        json.loads((path / TRAINER_STATE_NAME).read_text())
    except (OSError, ValueError):
        return "it lacks its trainer state or weights (a save cut short)"
    if not any((path / name).is_file() for name in WEIGHTS_FILES):
        return "it lacks its trainer state or weights (a save cut short)"
    for file in sorted(path.iterdir()):
        try:
            if file.suffix == ".safetensors":
                load_file(file)
            elif file.suffix in (".pt", ".pth", ".bin"):  # torch.save's zip: every member checked, nothing unpickled
                with zipfile.ZipFile(file) as archive:
                    if (member := archive.testzip()) is not None:
                        raise ValueError(f"{member} fails its checksum")
            elif file.suffix == ".json":
                json.loads(file.read_text())
        except Exception as error:  # what a truncated or corrupt file raises depends on where it breaks
            return f"its {file.name} does not load, truncated or corrupt ({type(error).__name__}: {error})"
    return None


def run_stages(
    model: nn.Module,
    stages: list[TrainingStage],
    args: argparse.Namespace | RunConfig,
    train_dataset,
    eval_dataset,
    compute_metrics: Callable | None,
    metric_for_best_model: str,
    greater_is_better: bool,
    data_collator: Callable | None = None,
    processing_class=None,
    trainer_class: type[CervixTrainer] = CervixTrainer,
    training_settings: dict[str, Any] | None = None,
) -> tuple[CervixTrainer, list[dict[str, Any]]]:
    """
    Trains `model` through `stages`; returns the last stage's trainer and one summary per stage.

    Each stage keeps the best checkpoint on `metric_for_best_model` (evaluated on `eval_dataset` every epoch),
    stops early after `args.early_stopping_patience` evaluations without improvement and cuts the learning
    rate 10x after `args.plateau_patience`. With `args.resume`, finished stages are reloaded from their folder and
    an interrupted one continues from its last checkpoint. `model` must have `set_backbone_trainable(bool)`;
    `processing_class` (the image processor) is saved with every checkpoint; `training_settings` are further
    `TrainingArguments` of every stage (e.g. `label_smoothing_factor`).
    """
    args = RunConfig.from_args(args)
    if not any(stage.epochs > 0 for stage in stages):
        raise ValueError("Nothing to train: every stage has 0 epochs.")
    trainer_kwargs = {
        "processing_class": processing_class,
        "eval_dataset": eval_dataset,
        "data_collator": data_collator,
        "compute_metrics": compute_metrics,
    }
    trainer = None
    summaries = []
    for stage in stages:
        if stage.epochs <= 0:
            continue
        stage_dir = args.output_dir / stage.name
        done_file = stage_dir / STAGE_DONE_FILE
        if args.resume and done_file.exists():
            model.load_state_dict(load_file(stage_dir / "model.safetensors"), strict=True)
            summaries.append(json.loads(done_file.read_text()))
            logger.info("Stage %s already finished: reloaded its best weights from %s.", stage.name, stage_dir)
            continue
        model.set_backbone_trainable(stage.train_backbone)
        stage_args = _stage_arguments(args, stage, stage_dir, metric_for_best_model, greater_is_better)
        if training_settings:
            stage_args = replace(stage_args, **training_settings)
        callbacks = [_EpochCallback(train_dataset)] if hasattr(train_dataset, "set_epoch") else []
        if stage.schedule == "plateau":
            callbacks.append(EarlyStoppingCallback(early_stopping_patience=args.early_stopping_patience))
        trainer = trainer_class(
            model=model, args=stage_args, train_dataset=train_dataset, callbacks=callbacks, **trainer_kwargs
        )
        summary = _train_stage(trainer, stage, stage_dir, args, metric_for_best_model)
        if trainer.is_world_process_zero():
            trainer.save_model(str(stage_dir))
            write_json(done_file, summary)
        summaries.append(summary)
    model.set_backbone_trainable(True)
    if trainer is None:  # every stage had finished before --resume: a trainer only to evaluate and predict
        trainer = trainer_class(model=model, args=_training_arguments(args, args.output_dir), **trainer_kwargs)
    return trainer, summaries


def _train_stage(trainer: CervixTrainer, stage: TrainingStage, stage_dir: Path, args, metric: str) -> StageSummary:
    """Trains one stage (continuing its last checkpoint with `--resume`) and summarises it."""
    checkpoint = last_complete_checkpoint(stage_dir) if args.resume and stage_dir.is_dir() else None
    if checkpoint:
        logger.info("Resuming stage %s from %s.", stage.name, checkpoint)
    elif args.resume:
        logger.info("Stage %s has no checkpoint to resume from: it starts from the beginning.", stage.name)
    result = trainer.train(resume_from_checkpoint=checkpoint)
    return StageSummary(
        stage=stage.name,
        **asdict(stage),
        global_step=trainer.state.global_step,
        epochs_run=trainer.state.epoch,
        train_loss=result.training_loss,
        best_metric=trainer.state.best_metric,
        metric_for_best_model=metric,
        best_checkpoint=published_path(best, args) if (best := trainer.state.best_model_checkpoint) else None,
        log_history=trainer.state.log_history,
    )


def _stage_arguments(
    args: RunConfig, stage: TrainingStage, stage_dir: Path, metric: str, greater_is_better: bool
) -> TrainingArguments:
    """One stage's `TrainingArguments`: evaluated and saved every epoch; under the `"plateau"` schedule the best
    checkpoint on `metric` is kept, under `"cosine"` the last."""
    if stage.schedule == "cosine":
        schedule = {
            "lr_scheduler_type": "cosine",
            "warmup_steps": stage.warmup_ratio,
            "load_best_model_at_end": False,
            "save_total_limit": 1,
        }
    else:
        schedule = {
            "lr_scheduler_type": "reduce_lr_on_plateau",
            "lr_scheduler_kwargs": {
                "mode": "max" if greater_is_better else "min",
                "factor": 0.1,
                "patience": args.plateau_patience,
            },
            "load_best_model_at_end": True,
            "save_total_limit": 2,
        }
    return _training_arguments(
        args,
        stage_dir,
        num_train_epochs=stage.epochs,
        max_steps=args.max_steps,
        learning_rate=stage.learning_rate,
        weight_decay=args.weight_decay,
        per_device_train_batch_size=stage.batch_size or args.batch_size,
        eval_strategy="epoch",
        save_strategy="epoch",
        metric_for_best_model=metric,
        **schedule,
        greater_is_better=greater_is_better,
        logging_steps=args.logging_steps,
        seed=args.seed,
        # Every trainable parameter takes part in every forward pass (frozen ones are not DDP's to track).
        ddp_find_unused_parameters=False,
    )


def _training_arguments(args: RunConfig, output_dir: Path, **stage_settings) -> TrainingArguments:
    """`TrainingArguments` for `output_dir`: what every trainer of a run shares, plus a stage's `stage_settings`."""
    return TrainingArguments(
        output_dir=str(output_dir),
        per_device_eval_batch_size=args.eval_batch_size or args.batch_size,
        dataloader_num_workers=args.workers,
        dataloader_pin_memory=torch.cuda.is_available(),
        # transformers takes bf16 without a GPU only when told to use the CPU.
        use_cpu=_cpu_processes() or (getattr(args, "bf16", False) and not torch.cuda.is_available()),
        remove_unused_columns=False,
        report_to="none",
        disable_tqdm=args.no_progress_bar,
        bf16=args.bf16,
        **stage_settings,
    )


def training_summary(args: argparse.Namespace | RunConfig, stages: list[StageSummary], **settings) -> dict:
    """The `training` entry of `eval_results.json`: the command that ran, the stages, the settings every script
    shares, then `settings`."""
    config = RunConfig.from_args(args)
    checkpoint = config.get("from_checkpoint")
    return {
        "command": published_command(sys.argv, config),
        "stages": stages,
        "augmentation": config.get("augmentation"),
        "batch_size": config.batch_size,
        "model_size": config.get("model_size") if not checkpoint else published_path(checkpoint, config),
        **settings,
    }


def published_command(argv: list[str], args: argparse.Namespace | RunConfig) -> str:
    """The training command as it ran (`python -m train.<script> ...` or `cervix-hf train ...`), relative paths as
    given and absolute ones as `published_path` writes them, so that a card shows the command without naming the
    machine's folders."""
    main_spec = getattr(sys.modules.get("__main__"), "__spec__", None)  # set under `python -m`
    script = main_spec.name if main_spec else ""
    module = script if script.startswith(("train.", "cervix_hf.train.")) else None
    words = []
    for word in argv[1:]:
        name, equals, value = word.partition("=")
        if word.startswith("-") and equals and os.path.isabs(value):
            words.append(name + "=" + published_path(value, args))
        elif not word.startswith("-") and os.path.isabs(word):
            words.append(published_path(word, args))
        else:
            words.append(word)
    return shlex.join(["python", "-m", module, *words] if module else ["cervix-hf", *words])


def finish_run(
    model, processor, output_dir: Path, eval_results: EvalResults, args: argparse.Namespace | RunConfig
) -> Path:
    """
    Writes what a run publishes: the model and processor, `eval_results.json` (checked against its contract first,
    `cervix_hf.evaluation.results`), its plots (`plots/`, `cervix_hf.evaluation.plots`), `training_args.json` and the
    model card `README.md`.
    """
    eval_results.software = software_versions()
    eval_results.validate()
    output_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output_dir)
    for weights in output_dir.glob("*.safetensors"):
        give_default_mode(weights)
    processor.save_pretrained(output_dir)
    write_json(output_dir / EVAL_RESULTS_FILE, eval_results.to_dict())
    write_evaluation_plots(eval_results.to_dict(), output_dir)  # the card links them
    config = RunConfig.from_args(args)
    published_args = {
        name: published_path(value, config) if isinstance(value, Path) else value
        for name, value in config.arguments.items()
    }
    write_json(output_dir / TRAINING_ARGS_FILE, published_args)
    # The card is rendered from the files just written and checked against them; it comes last, so a card that
    # fails its check leaves the run's results saved.
    try:
        write_model_card(output_dir)
    except ModelCardError as err:
        err.add_note(
            f"The model and its evaluation are saved in {output_dir}; after fixing the cause, render the card with "
            f"`{module_command('train.render_card')} --model-dir {output_dir}`."
        )
        raise
    return output_dir


def published_path(path: str | Path, args: argparse.Namespace | RunConfig) -> str:
    """
    How a file of the run folder names a local path, so that a published run names no folder of the machine that
    trained it: a path inside `--output-dir` relative to it (`"."` for the folder itself); one inside `--data` as
    `<data set name>/<path inside it>`, which anyone holding the data set finds beside it; any other (a
    `--from-checkpoint` model, an `--annotations` file) by its name alone. Relative paths are read from the current
    folder, as the scripts read them; links are not followed (a data folder of links to photos elsewhere still
    names them inside it).
    """
    config = RunConfig.from_args(args)
    path = Path(os.path.abspath(path))
    output_dir = Path(os.path.abspath(config.output_dir))
    if path.is_relative_to(output_dir):
        return path.relative_to(output_dir).as_posix()
    data = Path(os.path.abspath(config.data)) if config.data is not None else None
    if data is not None and path.is_relative_to(data):
        return (PurePosixPath(data.name) / path.relative_to(data).as_posix()).as_posix()
    return path.name
