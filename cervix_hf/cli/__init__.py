"""cervix_hf's commands under one name: train, predict, render model cards, publish to the Hub, serve the app.

`cervix-hf` (or `python -m cervix_hf`) runs the same commands as the modules do:

    cervix-hf train MODEL_TYPE ...   python -m train.train_<model_type>  (colponet, cell_detector, prepost_fusion)
    cervix-hf predict ...            python -m cervix_hf.predict
    cervix-hf evaluate ...           python -m train.evaluate
    cervix-hf export ...             python -m cervix_hf.export
    cervix-hf render-card ...        python -m train.render_card
    cervix-hf push-to-hub ...        python -m train.push_to_hub
    cervix-hf push-space ...         python -m train.push_space
    cervix-hf publish MODEL_TYPE ... python -m train.publish  (train, evaluate, export, card, push; resumable)
    cervix-hf app ...                python app.py

The `train` commands come from the model records (`cervix_hf.registry`), so a new model gets its own; a record's
aliases (`train detector`, `train prepost`) name the same command.

Each command is its module's own `get_args_parser()` and `main`, imported only when it runs;
`cervix-hf COMMAND --help` lists its options with their defaults.
"""

import argparse
import copy
import importlib
import sys
from dataclasses import dataclass

from cervix_hf import __version__
from cervix_hf.commands import DefaultsHelpFormatter, training_package
from cervix_hf.registry import FAMILIES

PROG = "cervix-hf"


@dataclass(frozen=True)
class Command:
    """
    One subcommand. `module` is spelled as in a checkout; `train.<script>` is looked up in the training package
    ([`training_package`]). The training scripts' `main(args)` takes the parsed arguments, as torchvision's
    references do; the other commands' `main(argv)` takes the argument list (`parses_argv`).
    """

    name: str
    module: str
    summary: str
    parses_argv: bool = True
    aliases: tuple[str, ...] = ()


COMMANDS = (
    *(
        Command(
            f"train {family.model_type}",
            family.training_script,
            f"train {family.title}",
            parses_argv=False,
            aliases=family.aliases,
        )
        for family in FAMILIES
    ),
    Command("predict", "cervix_hf.cli.predict", "predict with any saved model over files, folders or lists, to CSV"),
    Command("evaluate", "train.evaluate", "evaluate a saved model on a labelled data set: eval_results.json, plots"),
    Command("export", "cervix_hf.cli.export", "export a saved model to ONNX (fp32 or int8) beside its weights"),
    Command("render-card", "train.render_card", "render a trained model folder's model card again"),
    Command("push-to-hub", "train.push_to_hub", "publish a trained model folder to the Hub, in one commit"),
    Command("push-space", "train.push_space", "publish the demo Space to the Hub, in one commit"),
    Command("publish", "train.publish", "train, evaluate, export and publish a model from a data folder, resumably"),
    Command("app", "cervix_hf.app", "serve the Gradio app"),
)


def import_command_module(command: Command):
    package, _, name = command.module.partition(".")
    return importlib.import_module(f"{training_package()}.{name}" if package == "train" else command.module)


def get_args_parser() -> argparse.ArgumentParser:
    """The top level only: it picks the command; the command's own parser reads everything after it."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=__doc__.split("\n\n")[0],
        epilog=f"Options of a command, with their defaults: {PROG} COMMAND --help.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    groups = {}
    for command in COMMANDS:
        group, _, name = command.name.rpartition(" ")
        if group and group not in groups:
            group_parser = commands.add_parser(group, help=f"{group} a model", description=f"{group} a model")
            groups[group] = group_parser.add_subparsers(title="models", metavar="MODEL", required=True)
        # No options here (not even --help), so that everything after the name is left for the command's parser.
        leaf = (groups[group] if group else commands).add_parser(
            name, aliases=list(command.aliases), help=command.summary, add_help=False
        )
        leaf.set_defaults(command=command)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    selected, command_argv = get_args_parser().parse_known_args(argv)
    command = selected.command
    module = import_command_module(command)
    parser = module.get_args_parser()
    parser.prog = f"{PROG} {command.name}"
    parser.formatter_class = DefaultsHelpFormatter
    # --help and usage errors come from here, under this command's name; a `main(argv)` parses the list again.
    args = parser.parse_args(command_argv)
    result = module.main(command_argv if command.parses_argv else args)
    return result if isinstance(result, int) else 0  # a training run returns its results
