"""Input validation shared by every half: each helper turns one kind of bad file into a one-line ``VadInputError``.

Torch-free (the runtime imports it); tensors from torch are checked through their own methods.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from vadedge.errors import VadInputError


def read_text(path: str | os.PathLike, what: str) -> str:
    """A user's text file (list, annotation, order, sidecar) decoded as UTF-8 (a BOM is dropped).

    Raises VadInputError naming the file and the first undecodable byte's line, or a missing file.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise VadInputError(f"{what} {path} not found") from None
    except OSError as exc:
        raise VadInputError(f"{what} {path}: cannot read it ({exc.strerror or exc})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise VadInputError(f"{what} {path}: not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}); "
                            "re-save it as UTF-8") from None


def read_json(path: str | os.PathLike, what: str, required: Iterable[str] = ()) -> dict[str, Any]:
    """A JSON object file with the ``required`` keys; anything else is a one-line error."""
    text = read_text(path, what)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise VadInputError(f"{what} {path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    return require_keys(data, required, f"{what} {path}")


def require_keys(data: Any, required: Iterable[str], where: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise VadInputError(f"{where}: expected a JSON object, got {type(data).__name__}")
    missing = [k for k in required if k not in data]
    if missing:
        raise VadInputError(f"{where}: missing field(s) {missing}")
    return data


def _nonfinite_count(value) -> int:
    if hasattr(value, "is_floating_point"):  # torch.Tensor, checked without importing torch
        if not (value.is_floating_point() or value.is_complex()):
            return 0
        return int((~value.isfinite()).sum())
    arr = np.asarray(value)
    if not np.issubdtype(arr.dtype, np.inexact):
        return 0
    return int((~np.isfinite(arr)).sum())


def require_finite(tensors: Mapping[str, Any], source: str, kind: str = "tensor") -> None:
    """Every floating-point tensor or array in ``tensors`` is free of NaN and inf.

    ``source`` names the file (or video); the error names the first bad ``kind`` (tensor, scores, …).
    """
    for name, value in tensors.items():
        bad = _nonfinite_count(value)
        if bad:
            total = int(np.prod(getattr(value, "shape", ()) or (1,)))
            raise VadInputError(f"{source}: {kind} {name!r} has {bad} of {total} values NaN or inf")


def require_finite_onnx(path: str | os.PathLike) -> None:
    """An ONNX file's weights (initializers) are free of NaN and inf; needs the ``onnx`` package."""
    import onnx
    from onnx import numpy_helper

    try:
        proto = onnx.load(str(path))
    except Exception as exc:  # protobuf's DecodeError and friends for truncated or foreign files
        raise VadInputError(f"{path}: not a readable ONNX file ({type(exc).__name__})") from None
    require_finite({t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}, str(path))


def load_npz(path: str | os.PathLike, what: str) -> dict[str, np.ndarray]:
    """Every array of a ``.npz`` (no pickles): a missing, corrupt or object-array file is a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise VadInputError(f"{what} {path} not found")
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if magic == b"\x93NUMPY":
        raise VadInputError(f"{what} {path}: a single .npy array; expected a .npz archive of per-video arrays")
    if magic[:4] != b"PK\x03\x04":
        raise VadInputError(f"{what} {path}: not a readable .npz archive (no zip header)")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise VadInputError(f"{what} {path}: holds object (pickled) arrays; expected plain numeric arrays") from None
        raise VadInputError(f"{what} {path}: not a readable .npz archive ({exc})") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise VadInputError(f"{what} {path}: not a readable .npz archive ({type(exc).__name__}: {exc})") from None


def binary_labels(labels: np.ndarray, where: str) -> np.ndarray:
    """Frame labels: a 1-D integer or boolean array holding only 0 and 1, returned as uint8."""
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise VadInputError(f"{where}: expected 1-D frame labels, got shape {list(arr.shape)}")
    if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool or np.issubdtype(arr.dtype, np.floating)):
        raise VadInputError(f"{where}: expected 0/1 frame labels, got dtype {arr.dtype}")
    bad = ~np.isin(arr, (0, 1))
    if bad.any():
        values = np.unique(arr[bad])[:5].tolist()
        raise VadInputError(f"{where}: frame labels must be 0 or 1, found {values} at {int(bad.sum())} frames")
    return arr.astype(np.uint8)


def require_shapes(expected: Mapping[str, tuple], got: Mapping[str, Any], source: str, hint: str = "") -> None:
    """Each tensor present in both has the expected shape; the error names the tensor and both shapes."""
    for name, shape in expected.items():
        if name in got and tuple(got[name].shape) != tuple(shape):
            raise VadInputError(f"{source}: tensor {name!r} has shape {list(got[name].shape)}, "
                                f"expected {list(shape)}{hint}")


def worker_error(exc: BaseException) -> str:
    """The original one-line message of a VadInputError re-raised by a DataLoader worker.

    PyTorch re-raises a worker's exception with the worker's whole traceback as its message;
    the original message is the traceback's last ``…VadInputError: msg`` line.
    """
    text = str(exc)
    for line in reversed(text.splitlines()):
        if "VadInputError: " in line:
            return line.split("VadInputError: ", 1)[1]
    return text.splitlines()[-1] if text else type(exc).__name__
