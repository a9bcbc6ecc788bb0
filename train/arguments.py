"""The training scripts' shared arguments: what every script accepts (`add_common_args`), the `--recipe` parser and
the schedules. Imports nothing heavy, so that a script's `--help` answers without importing torch."""

import argparse
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEDULES = ("plateau", "cosine")


def add_common_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Arguments every training script shares."""
    parser.add_argument("--output-dir", required=True, type=Path, help="where checkpoints and the model go")
    parser.add_argument("--batch-size", default=16, type=int, help="per device")
    parser.add_argument("--eval-batch-size", default=None, type=int, help="per device (default: --batch-size)")
    parser.add_argument("--weight-decay", default=1e-4, type=float)
    parser.add_argument("--early-stopping-patience", default=5, type=int, help="evaluations without improvement")
    parser.add_argument("--plateau-patience", default=2, type=int, help="evaluations before the lr is cut 10x")
    parser.add_argument("--max-steps", default=-1, type=int, help="cap on optimiser steps per stage (smoke runs)")
    parser.add_argument("--seed", default=42, type=int)
    parser.add_argument("--workers", default=2, type=int, help="data-loading processes")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run in --output-dir")
    parser.add_argument("--logging-steps", default=10, type=int)
    parser.add_argument(
        "--bf16",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="bfloat16 autocast for the forward passes (GPUs with bf16, CPUs with AVX-512 BF16 or AMX); weights and "
        "optimiser stay float32",
    )
    parser.add_argument("--no-progress-bar", action="store_true")
    backbone = parser.add_mutually_exclusive_group()
    backbone.add_argument(
        "--no-pretrained-backbone", action="store_true", help="start the backbone from random weights on purpose"
    )
    backbone.add_argument(
        "--require-pretrained-backbone",
        action="store_true",
        help="fail instead of warning when the ImageNet backbone cannot be downloaded",
    )
    return parser


class RecipeArgumentParser(argparse.ArgumentParser):
    """
    An argument parser whose `--recipe NAME` sets the defaults of the arguments it names, so that a flag given on
    the command line still wins, wherever it stands and whatever its value (`--label-smoothing 0` included).

    Args:
        recipes (`Mapping[str, Mapping[str, Any]]`): each recipe's defaults, by argument name (`dest`).
    """

    def __init__(self, *args, recipes: dict[str, dict[str, Any]], **kwargs):
        super().__init__(*args, **kwargs)
        self.recipes = recipes

    def parse_known_args(self, args=None, namespace=None):
        probe = argparse.ArgumentParser(add_help=False)
        probe.add_argument("--recipe", choices=sorted(self.recipes))
        chosen, _ = probe.parse_known_args(args)
        if not chosen.recipe:
            return super().parse_known_args(args, namespace)
        saved = {action.dest: action.default for action in self._actions}
        self.set_defaults(**self.recipes[chosen.recipe])
        try:
            return super().parse_known_args(args, namespace)
        finally:  # the parser's own defaults again, for the next parse
            self.set_defaults(**saved)


def validate_common_args(args: "argparse.Namespace | RunConfig") -> None:
    """Refuses, by flag, a common argument out of range; a script without one (or leaving it to its recipe, `None`)
    is not checked for it."""
    for name in ("batch_size", "early_stopping_patience", "plateau_patience", "logging_steps"):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be at least 1, got {value}.")
    workers = getattr(args, "workers", None)
    if workers is not None and workers < 0:
        raise SystemExit(f"--workers must be 0 or more, got {workers}.")


def decision_threshold(value: str, config, operating_points: Sequence[str]) -> float:
    """`--decision-threshold`: one of `operating_points` (chosen on validation, saved in `config`, read by its
    `threshold_for`) or a probability in [0, 1]."""
    if value in operating_points:
        try:
            return config.threshold_for(value)
        except ValueError as err:
            raise SystemExit(f"--decision-threshold {value}: {err}") from None
    try:
        threshold = float(value)
    except ValueError:
        raise SystemExit(
            f"--decision-threshold {value!r}: give a probability or one of {', '.join(operating_points)}."
        ) from None
    if not 0.0 <= threshold <= 1.0:
        raise SystemExit(f"--decision-threshold {value}: must be in [0, 1].")
    return threshold


@dataclass(frozen=True)
class RunConfig:
    r"""
    What the training engine (`train/engine.py`) reads of a run, typed: the common arguments (`add_common_args`),
    where the run writes and reads, and every argument the script parsed, as it parsed them (`arguments`, written to
    `training_args.json`).

    Args:
        output_dir (`Path`): the run folder.
        data (`Path`, *optional*): the data set's folder, for the paths the run's files name inside it.
        seed (`int`), batch_size (`int`), eval_batch_size (`int`, *optional*), weight_decay (`float`),
        early_stopping_patience (`int`), plateau_patience (`int`), max_steps (`int`), workers (`int`),
        resume (`bool`), logging_steps (`int`), bf16 (`bool`), no_progress_bar (`bool`): as `add_common_args` says.
        arguments (`dict`): every argument of the script, by name.
    """

    output_dir: Path
    data: Path | None = None
    seed: int = 42
    batch_size: int = 16
    eval_batch_size: int | None = None
    weight_decay: float = 1e-4
    early_stopping_patience: int = 5
    plateau_patience: int = 2
    max_steps: int = -1
    workers: int = 2
    resume: bool = False
    logging_steps: int = 10
    bf16: bool = False
    no_progress_bar: bool = False
    arguments: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_args(cls, args: "argparse.Namespace | RunConfig") -> "RunConfig":
        """The run configuration of a script's parsed arguments (a `RunConfig` is returned as it is)."""
        if isinstance(args, RunConfig):
            return args
        given = vars(args)
        names = {item.name for item in dataclasses.fields(cls)} - {"arguments", "output_dir"}
        known = {name: given[name] for name in names if given.get(name) is not None}
        data = known.pop("data", None)
        return cls(
            output_dir=Path(args.output_dir),
            data=Path(data) if data is not None else None,
            arguments=dict(given),
            **known,
        )

    def get(self, name: str, default: Any = None) -> Any:
        """A script's own argument (`--augmentation`, `--model-size` ...), or `default` when it has none."""
        return self.arguments.get(name, default)


__all__ = [
    "SCHEDULES",
    "RecipeArgumentParser",
    "RunConfig",
    "decision_threshold",
    "add_common_args",
    "validate_common_args",
]
