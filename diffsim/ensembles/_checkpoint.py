"""The on-disk record of a resumable ensemble run (private).

Contract: `RunRecord.open(path, fingerprint, n_segments)` creates the folder `path` for a
new run, or reopens the record of the same call (equal `fingerprint`), and refuses one
written by a different call with a `ValueError` naming what differs. `commit(k, arrays)`
stores segment `k`'s results so that a kill at any instant leaves either the whole
segment or none of it: the file is written under a temporary name, flushed to disk
(`fsync`), renamed into place (`os.replace`, atomic on POSIX and Windows) and the folder
entry flushed. `committed()` lists the segments on disk; `load(k)` reads one back.

The format is one NumPy `.npz` per segment plus `run.json`: each commit is a single
file, so write-then-rename makes it atomic without a transaction layer, and it needs no
dependency. (orbax-checkpoint brings tensorstore and asynchronous commits built for model
weights; zarr is used for the per-member outputs of `out=`, `_store.py`, where lazy
chunked reads matter.)

`fingerprint(fn, batched_args, settings)` hashes what decides the results: `fn`'s code
and the values it closes over, every argument's values (not only their shapes) and the
settings, each part separately so that a refusal can say which part changed.
"""

import hashlib
import json
import os
import re
import tempfile
import types
from pathlib import Path

import jax
import numpy as np

_FORMAT = 1


def _hash_value(h, x, depth=0) -> None:
    """Feed a description of `x` to the hash `h`: array bytes, code, or `repr`."""
    if depth > 8:
        h.update(b"<deep>")
        return
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        try:
            arr = np.asarray(x)
        except Exception:  # a PRNG key array: its raw data
            arr = np.asarray(jax.random.key_data(x))
        h.update(f"{arr.dtype}{arr.shape}".encode())
        h.update(np.ascontiguousarray(arr).tobytes())
    elif callable(x) and hasattr(x, "__code__"):
        _hash_function(h, x, depth)
    else:
        leaves, treedef = jax.tree_util.tree_flatten(x)
        if len(leaves) == 1 and leaves[0] is x:  # not a container
            h.update(_stable_repr(x).encode())
            return
        h.update(_stable_repr(treedef).encode())
        for leaf in leaves:
            _hash_value(h, leaf, depth + 1)


def _stable_repr(x) -> str:
    """`repr` without memory addresses, which differ between processes."""
    return re.sub(r" at 0x[0-9a-fA-F]+", "", repr(x))


def _hash_function(h, f, depth) -> None:
    """A function by its code (nested functions' included), its constants, the values it
    closes over and the globals it reads (values, and functions the same way, to a
    bounded depth): an edited or re-parameterised `fn` is a different call, and the same
    one is not. Modules and classes count by name."""
    h.update(f"{f.__module__}.{f.__qualname__}".encode())
    _hash_code(h, f.__code__, getattr(f, "__globals__", {}), depth)
    for cell in f.__closure__ or ():
        try:
            _hash_value(h, cell.cell_contents, depth + 1)
        except ValueError:  # an empty cell
            h.update(b"<empty>")
    for default in f.__defaults__ or ():
        _hash_value(h, default, depth + 1)


def _hash_code(h, code, globals_: dict, depth) -> None:
    h.update(code.co_code)
    for const in code.co_consts:
        if hasattr(const, "co_code"):  # a lambda or function defined inside
            _hash_code(h, const, globals_, depth + 1)
        else:
            h.update(_stable_repr(const).encode())
    for name in code.co_names:
        if name not in globals_:
            continue
        value = globals_[name]
        h.update(name.encode())
        if isinstance(value, (types.ModuleType, type)):
            h.update(getattr(value, "__name__", "").encode())
        else:
            _hash_value(h, value, depth + 1)


def fingerprint(fn, batched_args, settings: dict) -> dict[str, str]:
    """Hashes of the three parts of a call: `fn`, `arguments`, `settings`."""
    parts = {"fn": fn, "arguments": batched_args, "settings": settings}
    out = {}
    for name, value in parts.items():
        h = hashlib.sha256()
        _hash_value(h, value)
        out[name] = h.hexdigest()
    return out


def _fsync_dir(path: Path) -> None:
    if os.name == "nt":  # folders cannot be opened for fsync on Windows
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, write) -> None:
    """`write(file)` into a temporary file next to `path`, flushed, then renamed to `path`."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


class RunRecord:
    """The committed segments of one run; see the module docstring."""

    def __init__(self, path: Path, n_segments: int):
        self.path = path
        self.n_segments = n_segments

    @classmethod
    def open(cls, path, prints: dict[str, str], n_segments: int, what: str) -> "RunRecord":
        path = Path(path)
        meta = {"format": _FORMAT, "n_segments": n_segments, **prints}
        manifest = path / "run.json"
        if manifest.exists():
            _check_same_call(json.loads(manifest.read_text()), meta, path, what)
        else:
            path.mkdir(parents=True, exist_ok=True)
            if any(p.name.startswith("segment-") for p in path.iterdir()):
                raise ValueError(
                    f"{what}={str(path)!r} holds segment files but no run.json: it is not a "
                    "ds.ensemble checkpoint. Pass an empty or new folder."
                )
            atomic_write(manifest, lambda f: f.write(json.dumps(meta, indent=1).encode()))
        return cls(path, n_segments)

    def _file(self, k: int) -> Path:
        return self.path / f"segment-{k:08d}.npz"

    def committed(self) -> list[int]:
        return [k for k in range(self.n_segments) if self._file(k).exists()]

    def commit(self, k: int, arrays: list[np.ndarray]) -> None:
        named = {f"leaf_{i}": a for i, a in enumerate(arrays)}
        atomic_write(self._file(k), lambda f: np.savez(f, **named))

    def load(self, k: int) -> list[np.ndarray]:
        with np.load(self._file(k)) as data:
            return [data[f"leaf_{i}"] for i in range(len(data.files))]


def _check_same_call(found: dict, meta: dict, path: Path, what: str) -> None:
    differ = [name for name in ("fn", "arguments", "settings") if found.get(name) != meta[name]]
    if found.get("format") != _FORMAT or found.get("n_segments") != meta["n_segments"]:
        differ.append("settings")
    if differ:
        raise ValueError(
            f"{what}={str(path)!r} holds a run of a different call: its "
            f"{' and '.join(sorted(set(differ)))} differ from this one's. A checkpoint "
            "resumes only the call that wrote it; pass a new path to start this run, or "
            "delete the folder to start over."
        )
