"""How this installation's commands are spelled when the package prints one for a user to run (a hint, an error's
next step): the interpreter that runs now, and the training scripts' package as it is installed here; and how their
help is laid out ([`DefaultsHelpFormatter`]). Imports nothing heavy: every command's `--help` reads it."""

import argparse
import copy
import importlib.util
import shlex
import sys
from pathlib import Path


def training_package() -> str:
    """
    The package of the training and publishing scripts: `cervix_hf.train` where cervix_hf is installed (from a
    wheel, or with `pip install -e .`), the top-level `train` of a checkout that is only on `sys.path`.
    """
    return "cervix_hf.train" if importlib.util.find_spec("cervix_hf.train") else "train"


def python_command() -> str:
    """
    The interpreter running now, as a printed command should name it: relative to the current folder when it is
    inside it (`.venv/bin/python`), else its full path. A bare `python` may be another interpreter, without torch,
    on a fresh machine.
    """
    executable = Path(sys.executable)
    try:
        return str(executable.relative_to(Path.cwd()))
    except ValueError:
        return str(executable)


def module_command(module: str) -> str:
    """`<python_command()> -m <module>`, with the training scripts' package as it is installed here (`train.X` in a
    checkout, `cervix_hf.train.X` installed)."""
    package, _, name = module.partition(".")
    if package == "train":
        module = f"{training_package()}.{name}"
    return f"{shlex.quote(python_command())} -m {module}"


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """
    Help that ends each option with its default, also for options without a help text, unless it has none (`None`,
    an unset flag, an empty list) or the help already says what the default is.
    """

    def _format_action(self, action: argparse.Action) -> str:
        if not action.help and _has_default(action):
            action = copy.copy(action)
            action.help = "(default: %(default)s)"  # argparse leaves out the help of an option that has none
        return super()._format_action(action)

    def _get_help_string(self, action: argparse.Action) -> str:
        help_text = action.help or ""
        if _has_default(action) and "default" not in help_text:
            return f"{help_text} (default: %(default)s)"
        return help_text


def _has_default(action: argparse.Action) -> bool:
    if action.default is None or action.default is False or action.default in ([], argparse.SUPPRESS):
        return False
    return bool(action.option_strings) or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE)


__all__ = ["DefaultsHelpFormatter", "module_command", "python_command", "training_package"]
