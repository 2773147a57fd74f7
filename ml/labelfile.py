"""The one reader of `path,key` label files: rows → (resolved path, key or no-key label), errors by line."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from ml.keys import NO_KEY_LABELS, Key, KeyParseError

# What people write for "no key" in label files made by other tools.
_NO_KEY_SPELLINGS = ("x", "n", "none", "atonal")


class LabelFileError(ValueError):
    """A label file the user has to fix; the message names the file and the line."""


@dataclass(frozen=True)
class LabelRow:
    path: Path  # absolute: relative paths are resolved against the CSV's folder
    key: Key | None  # None for the no-key labels
    label: str  # "key", one of ml.keys.NO_KEY_LABELS, or "" when read with keys=False
    line: int  # 1-based line of the CSV, for error messages
    source: str  # "labels.csv, line 7"


def parse_label(text: str) -> tuple[Key | None, str]:
    """A key in any notation ml.keys reads, or a no-key label: (key, "key") or (None, label)."""
    normalised = text.strip().lower().replace("-", "_").replace(" ", "_")
    if normalised in NO_KEY_LABELS:
        return None, normalised
    if normalised in _NO_KEY_SPELLINGS:
        return None, "no_key"
    return Key.parse(text.strip()), "key"


def read_label_file(
    path: str | os.PathLike, *, allow_no_key: bool = True, require_files: bool = False, keys: bool = True
) -> list[LabelRow]:
    """Every row of a `path,key` CSV (header required; BOM and spaces tolerated).

    `allow_no_key=False` rejects rows labelled ambiguous / no_key / modulating (training needs keys);
    `require_files=True` checks that every audio file exists; `keys=False` reads a list of audio files:
    only the `path` column is needed and any key column is ignored (rows get key None, label "").
    Raises LabelFileError.
    """
    csv_path = Path(path)
    if not csv_path.is_file():
        raise LabelFileError(f"{csv_path}: label file not found")
    rows: list[LabelRow] = []
    try:
        with csv_path.open(newline="", encoding="utf-8-sig") as stream:
            reader = csv.DictReader(stream)
            needed = {"path", "key"} if keys else {"path"}
            if not reader.fieldnames or not needed <= {name.strip() for name in reader.fieldnames}:
                header = "path,key" if keys else "path (and any other columns)"
                raise LabelFileError(f"{csv_path}: the first line must be the header '{header}'")
            for row in reader:
                line = reader.line_num
                source = f"{csv_path}, line {line}"
                values = {(name or "").strip(): (value or "").strip() for name, value in row.items() if name}
                if not values.get("path"):
                    raise LabelFileError(f"{source}: the path is empty")
                try:
                    key, label = parse_label(values.get("key", "")) if keys else (None, "")
                except KeyParseError as error:
                    raise LabelFileError(f"{source}: {error}") from error
                if keys and key is None and not allow_no_key:
                    raise LabelFileError(
                        f"{source}: labelled {label!r}, but every row needs a key here (remove the row)"
                    )
                file_path = Path(values["path"]).expanduser()
                file_path = (file_path if file_path.is_absolute() else csv_path.parent / file_path).resolve()
                if require_files and not file_path.is_file():
                    raise LabelFileError(f"{source}: audio file {file_path} not found")
                rows.append(LabelRow(path=file_path, key=key, label=label, line=line, source=source))
    except UnicodeDecodeError as error:
        raise LabelFileError(f"{csv_path}: not a UTF-8 text file ({error.reason})") from error
    return rows
