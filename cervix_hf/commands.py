"""How this installation's commands are spelled when the package prints one for a user to run (a hint, an error's
next step): the interpreter that runs now, and the training scripts' package as it is installed here."""

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


__all__ = ["module_command", "python_command", "training_package"]
