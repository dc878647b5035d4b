"""Model folders: a JSON manifest plus plain arrays, written atomically.

A model folder is written into a temporary sibling folder and renamed into place only
once complete, so a crash mid-write never leaves a half model where a good one was.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from recommender.errors import ModelFolderError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"


@contextlib.contextmanager
def atomic_folder(target: Path | str) -> Iterator[Path]:
    """Yield a temporary folder that replaces ``target`` when the block succeeds.

    On an exception the temporary folder is removed and ``target`` is left untouched.
    """
    final = Path(target).resolve()
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        yield tmp
        backup = None
        if final.exists():
            backup = final.with_name(f".{final.name}.old-{os.getpid()}")
            os.replace(final, backup)
        os.replace(tmp, final)
        if backup is not None:
            shutil.rmtree(backup, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def check_model_target(target: Path | str) -> None:
    """Refuse to write a model folder over anything but an older model folder.

    Writing a model replaces its folder whole (:func:`atomic_folder`); a path that holds
    something else (a dataset, a file, a folder of one's own) would be deleted with it.
    A missing path or an empty folder is fine.

    Raises:
        ModelFolderError: ``target`` is a file, or a non-empty folder without
            ``manifest.json``.
    """
    path = Path(target)
    if not path.exists():
        return
    if not path.is_dir():
        raise ModelFolderError(f"'{path}' is a file, not a model folder")
    if (path / MANIFEST).is_file() or not any(path.iterdir()):
        return
    raise ModelFolderError(
        f"'{path}' holds files but no model (no {MANIFEST}); writing a model there would "
        "delete them: choose an empty or new folder"
    )


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented UTF-8 JSON."""
    path.write_text(json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return None if np.isnan(obj) else float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def read_json(path: Path) -> Any:
    """Read a JSON file.

    Raises:
        ModelFolderError: the file is missing or not valid JSON.
    """
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelFolderError(f"{path.name} is missing from {path.parent}") from None
    except json.JSONDecodeError as exc:
        raise ModelFolderError(f"{path} is not valid JSON: {exc}") from None


def save_arrays(path: Path, **arrays: np.ndarray) -> None:
    """Save numeric or string arrays to ``path`` (.npz) without pickling."""
    clean = {}
    for key, arr in arrays.items():
        a = np.asarray(arr)
        if a.dtype == object:
            a = a.astype(str)
        clean[key] = a
    np.savez(path, **clean)  # type: ignore[arg-type]


def load_arrays(path: Path) -> dict[str, np.ndarray]:
    """Load every array of an .npz file written by :func:`save_arrays` (no pickle)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except FileNotFoundError:
        raise ModelFolderError(f"{path.name} is missing from {path.parent}") from None


def package_versions() -> dict[str, str]:
    """Return the versions of leadrank and the libraries that shape a model."""
    names = [
        "leadrank",
        "numpy",
        "pandas",
        "scikit-learn",
        "lightgbm",
        "rectools-lightfm",
        "implicit",
        "faiss-cpu",
    ]
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def fingerprint(folder: Path) -> str:
    """Return a SHA-256 over the names and bytes of the CSV and TOML files of ``folder``."""
    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        if path.suffix in (".csv", ".toml", ".txt") and path.is_file():
            digest.update(path.name.encode())
            with path.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


def read_manifest(folder: Path | str) -> dict[str, Any]:
    """Read and check a model folder's manifest.

    Raises:
        ModelFolderError: no folder, no manifest, or a format version this code cannot read.
    """
    root = Path(folder)
    if not root.is_dir():
        raise ModelFolderError(f"model folder '{root}' not found")
    manifest = read_json(root / MANIFEST)
    version = manifest.get("format_version") if isinstance(manifest, dict) else None
    if version != FORMAT_VERSION:
        raise ModelFolderError(
            f"model folder '{root}' has format version {version!r}; "
            f"this leadrank reads version {FORMAT_VERSION}"
        )
    return dict(manifest)
