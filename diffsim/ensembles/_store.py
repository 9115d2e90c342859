"""Members' outputs written to disk as they finish: `ds.ensemble(..., out=PATH)` (private).

Contract: `OutputStore.open(path, example, n, chunk, prints)` creates (or reopens, for the
same call) a zarr group at `path` holding one array per leaf of `fn`'s output, of shape
`(n, *leaf.shape)`, chunked along the member axis in blocks of `chunk` members, so that
each segment of the run writes whole chunks and a reader can open any member range
lazily. `write(start, leaves)` stores rows `start:start + len`. `values()` returns the
output pytree with `zarr.Array` leaves, read from disk only when indexed.

zarr is used because it is the chunked array format of the scientific Python stack
(xarray, dask, and any language with a zarr reader open it), it writes chunk by chunk
without holding the whole array, and a member range is read without reading the rest.
It is an optional dependency: `pip install "diffsim-jax[store]"`.
"""

from pathlib import Path

import jax
import numpy as np


def _zarr():
    try:
        import zarr
    except ImportError:
        raise ImportError(
            'ds.ensemble(..., out=PATH) writes a zarr store: pip install "diffsim-jax[store]" '
            "(zarr >= 3, Python >= 3.11)."
        ) from None
    return zarr


def leaf_names(tree) -> list[str]:
    """A readable, unique array name per leaf: its path in the output (`ys.q`, `0`)."""
    paths = jax.tree_util.tree_flatten_with_path(tree)[0]
    names = []
    for path, _ in paths:
        name = jax.tree_util.keystr(path, simple=True, separator=".") or "output"
        name = name.replace("/", "_").removesuffix("._value")  # ds.RESULTS codes
        names.append(name if name not in names else f"{name}_{len(names)}")
    return names


class OutputStore:
    """See the module docstring."""

    def __init__(self, path, group, treedef, names):
        self.path = path
        self.group = group
        self.treedef = treedef
        self.names = names

    @classmethod
    def open(cls, path, example, n: int, chunk: int, prints: dict) -> "OutputStore":
        """`example`: one member's output as `jax.ShapeDtypeStruct` leaves."""
        zarr = _zarr()
        path = Path(path)
        leaves, treedef = jax.tree_util.tree_flatten(example)
        names = leaf_names(example)
        if (path / "zarr.json").exists():
            group = zarr.open_group(str(path), mode="r+")
            if group.attrs.get("diffsim_run") != prints:
                raise ValueError(
                    f"out={str(path)!r} holds the outputs of a different call. Pass a new "
                    "path, or delete the folder to start over."
                )
            return cls(path, group, treedef, names)
        if path.exists() and any(path.iterdir()):
            raise ValueError(
                f"out={str(path)!r} is a folder that is not empty and not a ds.ensemble "
                "store; pass a new or empty folder."
            )
        group = zarr.open_group(str(path), mode="w")
        for name, leaf in zip(names, leaves, strict=True):
            dtype = np.dtype(leaf.dtype)
            group.create_array(
                name,
                shape=(n, *leaf.shape),
                chunks=(min(chunk, n), *leaf.shape),
                dtype=dtype,
                fill_value=np.nan if dtype.kind in "fc" else 0,
            )
        group.attrs["diffsim_run"] = prints
        group.attrs["diffsim_leaves"] = names
        return cls(path, group, treedef, names)

    def write(self, start: int, leaves: list[np.ndarray]) -> None:
        for name, value in zip(self.names, leaves, strict=True):
            self.group[name][start : start + value.shape[0]] = value

    def values(self):
        """The outputs as lazy `zarr.Array`s, in `fn`'s output structure."""
        zarr = _zarr()
        group = zarr.open_group(str(self.path), mode="r")
        return jax.tree_util.tree_unflatten(self.treedef, [group[n] for n in self.names])
