"""Batch prediction: many inputs through one saved model, one row per input (per cell for the detector), written as
the rows come, resumable, and split across processes.

The engine under `cervix-hf predict`:

- [`find_inputs`] turns what the user typed into inputs: image files, folders (searched recursively), glob patterns,
  and CSV/TXT lists of paths; for the pre/post fusion model, pairs CSVs (`pre`, `post` columns) and the IARC atlas
  layout.
- [`Predictor`] runs a model over a chunk of inputs (batched for the classifiers) and returns flat rows, the same
  for CSV and JSON Lines. An input that cannot be read becomes a row with an `error`; the batch goes on.
- [`RowWriter`] appends rows to the output (CSV or JSON Lines) and flushes each chunk, so a run that stops keeps
  what it finished; [`completed_keys`] reads them back for `--resume`.
- [`shard`] and [`merge_shards`] split the inputs over the processes of a `torchrun` / `accelerate launch` run and
  join their outputs into one file, sorted by input, as one process would have written it.
"""

import csv
import glob
import io
import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cervix_hf.data import IMAGE_EXTENSIONS, read_iarc_atlas
from cervix_hf.data.layout import read_csv_rows
from cervix_hf.io.files import atomic_open
from cervix_hf.io.results import RowWriter, spreadsheet_unsafe
from cervix_hf.prediction.engines.base import PredictionEngine, given
from cervix_hf.registry import family

LIST_SUFFIXES = (".csv", ".txt")
PAIR_COLUMNS = ("pre", "post")

logger = logging.getLogger(__name__)


class InputError(ValueError):
    """An input argument that names nothing usable: a missing path, a glob that matches nothing, a bad list."""


@dataclass(frozen=True)
class BatchInput:
    """One input: an image path, or a (pre, post) pair of paths. `key` is how the output names it."""

    paths: tuple[str, ...]

    @property
    def key(self) -> tuple[str, ...]:
        return self.paths


def find_inputs(sources: Sequence[str], model_type: str) -> list[BatchInput]:
    """
    The inputs named by `sources`, in the order given (a folder's and a glob's files sorted), each once.

    Images: a file (of any kind: one that is not an image becomes an error row, not a stop), a folder (its image
    files, recursively, less the ground-truth masks `NAME_GT.png` beside an image `NAME.png`, as ISBI 2014 keeps
    them, which a warning counts; name a mask itself to predict it), a glob pattern (`photos/**/*.jpg`), or a `.txt`
    list (one path a line) or `.csv` list (a column `image` or `path`), whose relative paths are relative to the
    list's folder.

    Pairs (`model_type="prepost_fusion"`): a `.csv` with columns `pre` and `post` (other columns, such as `label`,
    are ignored; relative paths are relative to the csv's folder), or a folder in the IARC atlas layout
    (`images_low_grade/case_*`, `images_high_grade/case_*`: one pair per case, as `data.read_iarc_atlas` reads it).

    Raises:
        [`InputError`] naming the argument: a path that does not exist, a glob that matches nothing, a list without
        the needed column, or a folder with nothing to predict.
    """
    found = _find_pairs(sources) if family(model_type).input_columns == PAIR_COLUMNS else _find_images(sources)
    unique = list(dict.fromkeys(found))
    if not unique:
        raise InputError(f"No inputs found in {', '.join(sources)}.")
    return unique


def _find_images(sources: Sequence[str]) -> list[BatchInput]:
    found = []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            images = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
            masks = {p for p in images if p.stem.endswith("_GT") and p.with_name(p.stem[:-3] + p.suffix).is_file()}
            if masks:
                images = [p for p in images if p not in masks]
                logger.warning(
                    "%s: skipped %d ground-truth mask(s) (NAME_GT.png beside NAME.png, as ISBI 2014 "
                    "keeps them); name a mask itself to predict it.",
                    source,
                    len(masks),
                )
            if not images:
                raise InputError(f"{source}: the folder holds no image files ({', '.join(IMAGE_EXTENSIONS)}).")
            found += [BatchInput((str(p),)) for p in images]
        elif path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
            found += [BatchInput((p,)) for p in _read_list(path)]
        elif path.is_file():
            found.append(BatchInput((source,)))
        elif glob.has_magic(source):
            matches = sorted(p for p in glob.glob(source, recursive=True) if Path(p).is_file())
            if not matches:
                raise InputError(f"{source}: the pattern matches no file.")
            found += [BatchInput((p,)) for p in matches]
        else:
            raise InputError(f"{source}: no such file or folder.")
    return found


def _read_list(path: Path) -> list[str]:
    """The image paths of a `.txt` (one a line) or `.csv` (column `image` or `path`) list, relative to its folder."""
    if path.suffix.lower() == ".txt":
        lines = [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines()]
        names = [line for line in lines if line and not line.startswith("#")]
    else:
        rows = read_csv_rows(path)
        header = [name.strip().lower() for name in rows[0][1]] if rows else []
        column = next((name for name in ("image", "path") if name in header), None)
        if column is None:
            raise InputError(f"{path}: a list of images needs a column named 'image' or 'path' (found {header}).")
        index = header.index(column)
        names = [fields[index].strip() for _, fields in rows[1:] if len(fields) > index and fields[index].strip()]
    if not names:
        raise InputError(f"{path}: the list names no image.")
    return [str(path.parent / name) if not Path(name).is_absolute() else name for name in names]


def _find_pairs(sources: Sequence[str]) -> list[BatchInput]:
    found = []
    for source in sources:
        path = Path(source)
        if path.is_file() and path.suffix.lower() == ".csv":
            rows = read_csv_rows(path)
            header = [name.strip().lower() for name in rows[0][1]] if rows else []
            if "pre" not in header or "post" not in header:
                raise InputError(f"{path}: a pairs csv needs the columns 'pre' and 'post' (found {header}).")
            pre, post = header.index("pre"), header.index("post")
            for line, fields in rows[1:]:
                if len(fields) <= max(pre, post) or not fields[pre].strip() or not fields[post].strip():
                    raise InputError(f"{path}, line {line}: a row needs both a pre and a post image.")
                found.append(BatchInput(tuple(str(path.parent / fields[i].strip()) for i in (pre, post))))
        elif path.is_dir():
            if not any((path / grade).is_dir() for grade in ("images_low_grade", "images_high_grade")):
                raise InputError(
                    f"{source}: a folder of pairs must have the IARC atlas layout (images_low_grade/case_*, "
                    "images_high_grade/case_*); otherwise list the pairs in a csv with columns pre and post."
                )
            found += [BatchInput((r.pre_path, r.post_path)) for r in read_iarc_atlas(path).records]
        elif path.exists() or glob.has_magic(source):
            raise InputError(
                f"{source}: the fusion model takes pairs: a csv with columns pre and post, or the IARC atlas folder."
            )
        else:
            raise InputError(f"{source}: no such file or folder.")
    return found


def Predictor(model_type: str, model, processor, **options) -> PredictionEngine:
    """
    The prediction engine of the `model_type` model (its record's `engine`, `cervix_hf.prediction.engines`) over a
    loaded `model` and `processor` (any runtime): called on a chunk of inputs, it returns their flat rows (column:
    value), the same for every output format, named by its `columns`. `options` are the engine's
    (`PredictionEngine`: `ignore_quality_gate`, `threshold`, `operating_point`, `max_decoded_pixels`, `open_input`).
    """
    record = family(model_type)
    return record.engine(record, model, processor, **options)


def output_format(path: str | Path | None, requested: str | None) -> str:
    """`requested`, else the output file's suffix (`.jsonl` / `.json`: JSON Lines), else CSV."""
    if requested:
        return requested
    return "jsonl" if path is not None and Path(path).suffix.lower() in (".jsonl", ".json") else "csv"


def read_rows(path: str | Path, fmt: str) -> list[dict]:
    """
    The rows of an output file written by [`RowWriter`] (CSV values come back as text, as written: `row_key` reads
    the names back). A last line without its line end, which a run stopped while writing it left, is not read.
    """
    path = Path(path)
    with path.open(newline="", encoding="utf-8") as handle:
        text = handle.read()
    if not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    if fmt == "jsonl":
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise ValueError(f"{path}, line {number}: not a JSON object ({error.msg}).") from None
        return rows
    return list(csv.DictReader(io.StringIO(text, newline="")))


def row_key(row: dict, model_type: str, fmt: str | None = None) -> tuple[str, ...]:
    """The input a row is of: its name columns, read back from the cells `RowWriter` made safe when `fmt` is csv."""
    names = (str(row.get(column)) for column in family(model_type).input_columns)
    return tuple(spreadsheet_unsafe(name) if fmt == "csv" else name for name in names)


def _whole(row: dict, model_type: str, columns: Sequence[str] | None, fmt: str) -> bool:
    """
    Whether `row` is a whole row of an input predicted without error: every column is there (in a CSV, every field
    of its line) and its input is named; whether its values parse is its engine's `is_complete`.
    """
    if None in row or any(column not in row for column in columns or ()) or given(row.get("error")):
        return False
    if fmt == "csv" and any(value is None for value in row.values()):  # a line with fewer fields than the header
        return False
    return all(given(row.get(column)) for column in family(model_type).input_columns)


def _complete(row: dict, model_type: str, columns: Sequence[str] | None, fmt: str) -> bool:
    return _whole(row, model_type, columns, fmt) and family(model_type).engine.is_complete(row)


def completed_keys(
    path: str | Path,
    fmt: str,
    model_type: str,
    rows: list[dict] | None = None,
    columns: Sequence[str] | None = None,
) -> set[tuple[str, ...]]:
    """
    The inputs an earlier run finished (`--resume` skips them; the others are tried again): those with a complete
    row ([`_complete`]; `columns`, when given, are the columns every row needs); for the detector, an image whose
    summary row and every cell row are complete, with as many cell rows as its summary counts.
    """
    rows = read_rows(path, fmt) if rows is None else rows
    return family(model_type).engine.completed_keys(
        rows, lambda row: row_key(row, model_type, fmt), lambda row: _whole(row, model_type, columns, fmt)
    )


def keep_completed(path: str | Path, fmt: str, model_type: str, columns: Sequence[str]) -> set[tuple[str, ...]]:
    """
    Rewrites an earlier run's output with only the rows of inputs it finished, each input's once (a failed input's
    row, a row cut short or that does not parse, and the rows of an image cut off mid-way go, to be written again),
    and returns those inputs' keys.
    """
    rows = read_rows(path, fmt)
    if fmt == "csv" and rows and [column for column in rows[0] if column is not None] != list(columns):
        raise ValueError(f"{path} has other columns than this model's predictions; --resume needs the same model.")
    done = completed_keys(path, fmt, model_type, rows, columns)
    kept, seen = [], set()
    for row in rows:
        key = row_key(row, model_type, fmt)
        if key not in done or not _complete(row, model_type, columns, fmt):
            continue
        if family(model_type).engine.one_row_per_input:  # a second row for the same input goes
            if key in seen:
                continue
            seen.add(key)
        kept.append(row)
    with atomic_open(path, newline="", encoding="utf-8") as handle:
        RowWriter(handle, fmt, columns, header=True).write(kept, escape=False)  # written safe the first time
    return done


def chunks(items: Sequence, size: int) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def shard(items: Sequence, rank: int, world_size: int) -> list:
    """This process's share of `items`: every `world_size`-th from `rank`, so each process gets a similar mix."""
    return list(items[rank::world_size])


def shard_path(output: str | Path, rank: int, world_size: int) -> Path:
    output = Path(output)
    return output.with_name(f"{output.name}.part-{rank:0{len(str(world_size))}d}-of-{world_size}")


def merge_shards(
    output: str | Path, world_size: int, fmt: str, model_type: str, columns: Sequence[str], keep_existing: bool = False
) -> int:
    """
    Joins the shards of a several-process run into `output` (written whole, then moved into place), after its
    existing rows when `keep_existing` (a resumed run), sorted by input (the detector's rows of one image keep their
    order: cells best first, then the summary); removes the shards and returns the number of rows.
    """
    rows = read_rows(output, fmt) if keep_existing and Path(output).is_file() else []
    paths = [shard_path(output, rank, world_size) for rank in range(world_size)]
    for path in paths:
        rows += read_rows(path, fmt)
    rows.sort(key=lambda row: row_key(row, model_type, fmt))  # stable: within an input, the order it was written in
    with atomic_open(output, newline="", encoding="utf-8") as handle:
        RowWriter(handle, fmt, columns).write(rows, escape=False)  # the shards' cells are already safe
    for path in paths:
        path.unlink()
    return len(rows)


@dataclass(frozen=True)
class Processes:
    """Where this process stands in a `torchrun` / `accelerate launch` run (`RANK`, `WORLD_SIZE`); 0 of 1 alone."""

    rank: int = 0
    world_size: int = 1

    @classmethod
    def from_environment(cls) -> "Processes":
        return cls(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        """Waits for every process (gloo, over the launcher's rendezvous), joining the group on first use."""
        if self.world_size == 1:
            return
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("gloo")
        dist.barrier()

    def close(self) -> None:
        import torch.distributed as dist

        if self.world_size > 1 and dist.is_initialized():
            dist.destroy_process_group()
