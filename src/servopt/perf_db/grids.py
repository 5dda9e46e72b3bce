"""servopt's own grid format: one family of ragged measured grids as flat arrays.

A family (context attention, MoE token curves, ...) groups rows by a categorical *slice key*; each
slice becomes a dense row-major array over its own sorted axis values, NaN where nothing was
measured. Alongside the values the family keeps, per slice and per axis level, a presence mask
("is anything measured below this key?") so the kernels bracket only between keys that carry data,
exactly like a nested key->subtable map would; and the list of measured leaves (row-major order)
for the utilisation hold past the data. See ``servopt_kernels.grid`` for the resolver.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from servopt.errors import ServoptError
from servopt.perf_db.tables import codes
from servopt_kernels.dedup import unique_rows

_ARRAYS = (
    "axes",
    "ax_off",
    "ax_len",
    "vals",
    "val_off",
    "pres",
    "pres_off",
    "leaf_off",
    "leaf_coord",
    "leaf_lat",
)


@dataclass
class GridFamily:
    """Flat arrays of one grid family plus the slice-key index."""

    name: str
    ndim: int
    key_names: tuple[str, ...]
    axis_names: tuple[str, ...]
    # One array per key column (unicode or int64), slice i's key is (col[i] for col in key_cols).
    key_cols: tuple[np.ndarray, ...]
    axes: np.ndarray
    ax_off: np.ndarray
    ax_len: np.ndarray
    vals: np.ndarray
    val_off: np.ndarray
    pres: np.ndarray
    pres_off: np.ndarray
    leaf_off: np.ndarray
    leaf_coord: np.ndarray
    leaf_lat: np.ndarray
    # key tuple -> slice id, built on the first lookup: a run queries only a few of the families.
    _index: dict | None = field(default=None, repr=False, compare=False)

    @property
    def num_slices(self) -> int:
        return len(self.val_off)

    @property
    def num_points(self) -> int:
        return int(self.leaf_off[-1])

    def key(self, i: int) -> tuple:
        return tuple(c[i].item() for c in self.key_cols)

    def slice_id(self, key: tuple) -> int:
        """Slice id of a key tuple (values in key-column order), -1 when absent."""
        if self._index is None:
            # tolist() gives the same Python str/int values as .item(), for all slices at once.
            keys = (
                zip(*(c.tolist() for c in self.key_cols), strict=True)
                if self.key_cols
                else [()] * self.num_slices
            )
            self._index = {k: i for i, k in enumerate(keys)}
        return self._index.get(key, -1)

    def slice_points(self, i: int) -> int:
        return int(self.leaf_off[i + 1] - self.leaf_off[i])

    def kernel_args(self) -> tuple:
        return tuple(getattr(self, a) for a in _ARRAYS)

    def to_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        out = {f"{prefix}{a}": getattr(self, a) for a in _ARRAYS}
        for name, col in zip(self.key_names, self.key_cols, strict=True):
            out[f"{prefix}key:{name}"] = col
        out[f"{prefix}meta"] = np.array([self.name, str(self.ndim), ",".join(self.axis_names)])
        return out

    @classmethod
    def from_arrays(cls, d, prefix: str, key_names: tuple[str, ...]) -> GridFamily:
        name, ndim, axis_names = (str(x) for x in d[f"{prefix}meta"])
        return cls(
            name=name,
            ndim=int(ndim),
            key_names=key_names,
            axis_names=tuple(axis_names.split(",")),
            key_cols=tuple(np.asarray(d[f"{prefix}key:{k}"]) for k in key_names),
            **{a: np.ascontiguousarray(d[f"{prefix}{a}"]) for a in _ARRAYS},
        )


def _build_curves(name, key_names, axis_names, key_cols, slice_sorted, x_sorted, lat_sorted) -> GridFamily:
    """1-D families: every slice is a fully measured curve (keys are unique), vectorised."""
    n = len(x_sorted)
    n_slices = len(key_cols[0])
    counts = np.bincount(slice_sorted, minlength=n_slices)
    off = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    ax_off = np.zeros((n_slices, 3), dtype=np.int64)
    ax_len = np.ones((n_slices, 3), dtype=np.int64)
    ax_off[:, 0] = off[:-1]
    ax_len[:, 0] = counts
    pres_off = np.zeros((n_slices, 3), dtype=np.int64)
    pres_off[:, 0] = off[:-1]
    coord = np.zeros((n, 3))
    coord[:, 0] = x_sorted
    return GridFamily(
        name=name,
        ndim=1,
        key_names=key_names,
        axis_names=axis_names,
        key_cols=key_cols,
        axes=x_sorted.copy(),
        ax_off=ax_off,
        ax_len=ax_len,
        vals=lat_sorted.copy(),
        val_off=off[:-1].copy(),
        pres=np.ones(n, dtype=np.uint8),
        pres_off=pres_off,
        leaf_off=off,
        leaf_coord=coord,
        leaf_lat=lat_sorted.copy(),
    )


def build_family(
    name: str, cols: dict[str, np.ndarray], key_names: tuple[str, ...], axis_names: tuple[str, ...]
) -> GridFamily:
    """Build a family from merged table columns (one row per measured point, keys already unique)."""
    ndim = len(axis_names)
    if not 1 <= ndim <= 3:
        raise ServoptError("perf_db", name, "grid families have 1 to 3 numeric axes")
    n_rows = len(cols["latency"]) if cols else 0
    if n_rows == 0:
        return _empty(name, key_names, axis_names)
    key_rows = np.column_stack([codes(cols[k]).astype(np.float64) for k in key_names])
    first_row, slice_of_row = unique_rows(np.ascontiguousarray(key_rows))
    axis_vals = [np.asarray(cols[a], dtype=np.float64) for a in axis_names]
    lat = np.asarray(cols["latency"], dtype=np.float64)
    order = np.lexsort([*axis_vals[::-1], slice_of_row])
    key_cols = tuple(np.asarray(cols[k])[first_row] for k in key_names)
    if ndim == 1:
        return _build_curves(
            name, key_names, axis_names, key_cols, slice_of_row[order], axis_vals[0][order], lat[order]
        )

    axes_parts, vals_parts, pres_parts = [], [], []
    leaf_coord_parts, leaf_lat_parts = [], []
    n_slices = len(first_row)
    ax_off = np.zeros((n_slices, 3), dtype=np.int64)
    ax_len = np.ones((n_slices, 3), dtype=np.int64)
    val_off = np.zeros(n_slices, dtype=np.int64)
    pres_off = np.zeros((n_slices, 3), dtype=np.int64)
    leaf_off = np.zeros(n_slices + 1, dtype=np.int64)
    bounds = np.searchsorted(slice_of_row[order], np.arange(n_slices + 1))
    n_axes = n_vals = n_pres = n_leaves = 0
    for s in range(n_slices):
        rows = order[bounds[s] : bounds[s + 1]]
        idx = []
        shape = []
        for a in range(ndim):
            uniq, inv = np.unique(axis_vals[a][rows], return_inverse=True)
            ax_off[s, a] = n_axes
            ax_len[s, a] = len(uniq)
            axes_parts.append(uniq)
            n_axes += len(uniq)
            idx.append(inv)
            shape.append(len(uniq))
        dense = np.full(shape, np.nan)
        dense[tuple(idx)] = lat[rows]
        valid = ~np.isnan(dense)
        val_off[s] = n_vals
        vals_parts.append(dense.ravel())
        n_vals += dense.size
        for a in range(ndim):
            level = valid.any(axis=tuple(range(a + 1, ndim))) if a + 1 < ndim else valid
            pres_off[s, a] = n_pres
            pres_parts.append(level.ravel().astype(np.uint8))
            n_pres += level.size
        # Measured leaves in row-major (= lexicographic key) order for the hold.
        flat = np.flatnonzero(valid.ravel())
        multi = np.unravel_index(flat, shape)
        coord = np.zeros((len(flat), 3))
        for a in range(ndim):
            coord[:, a] = axes_parts[-ndim + a][multi[a]]
        leaf_coord_parts.append(coord)
        leaf_lat_parts.append(dense.ravel()[flat])
        n_leaves += len(flat)
        leaf_off[s + 1] = n_leaves
    return GridFamily(
        name=name,
        ndim=ndim,
        key_names=key_names,
        axis_names=axis_names,
        key_cols=key_cols,
        axes=np.concatenate(axes_parts),
        ax_off=ax_off,
        ax_len=ax_len,
        vals=np.concatenate(vals_parts),
        val_off=val_off,
        pres=np.concatenate(pres_parts),
        pres_off=pres_off,
        leaf_off=leaf_off,
        leaf_coord=np.concatenate(leaf_coord_parts),
        leaf_lat=np.concatenate(leaf_lat_parts),
    )


def _empty(name: str, key_names: tuple[str, ...], axis_names: tuple[str, ...]) -> GridFamily:
    return GridFamily(
        name=name,
        ndim=len(axis_names),
        key_names=key_names,
        axis_names=axis_names,
        key_cols=tuple(np.zeros(0, dtype=np.int64) for _ in key_names),
        axes=np.zeros(0),
        ax_off=np.zeros((0, 3), dtype=np.int64),
        ax_len=np.zeros((0, 3), dtype=np.int64),
        vals=np.zeros(0),
        val_off=np.zeros(0, dtype=np.int64),
        pres=np.zeros(0, dtype=np.uint8),
        pres_off=np.zeros((0, 3), dtype=np.int64),
        leaf_off=np.zeros(1, dtype=np.int64),
        leaf_coord=np.zeros((0, 3)),
        leaf_lat=np.zeros(0),
    )
