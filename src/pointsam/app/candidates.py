"""Candidate logits of one click, kept on the points that answered (a region of a big scan).

In local mode a click is answered on a region of ~16k-131k points; keeping (C, N) float32 logits for
every click of a 20M-point scan would cost 240 MB per click. `CandidateLogits` keeps the region's
values and gives full-cloud rows on demand (points outside the region: `OUTSIDE_LOGIT`, mask False).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pointsam.scene import OUTSIDE_LOGIT


@dataclass
class CandidateLogits:
    """Logits (C, n) of `indices` (sorted full-cloud indices; None: every point) in a cloud of
    `num_points`; behaves as the dense (C, N) array where one is needed (`np.asarray`, rows)."""

    values: np.ndarray
    indices: np.ndarray | None
    num_points: int

    @classmethod
    def dense(cls, logits: np.ndarray) -> CandidateLogits:
        """Every point's logits (C, N)."""
        logits = np.asarray(logits, np.float32)
        return cls(logits, None, int(logits.shape[1]))

    def __len__(self) -> int:
        return int(self.values.shape[0])

    @property
    def shape(self) -> tuple[int, int]:
        return len(self), self.num_points

    def row(self, k: int, out: np.ndarray | None = None) -> np.ndarray:
        """Full-cloud logits (N,) float32 of candidate `k` (written into `out` when given: a buffer
        reused from click to click costs a fill instead of a fresh N-float allocation)."""
        if self.indices is None:
            return self.values[k]
        if out is None:
            out = np.empty(self.num_points, np.float32)
        out.fill(OUTSIDE_LOGIT)
        out[self.indices] = self.values[k]
        return out

    def mask(self, k: int) -> np.ndarray:
        """Full-cloud mask (N,) bool of candidate `k`."""
        if self.indices is None:
            return self.values[k] > 0
        out = np.zeros(self.num_points, bool)
        out[self.indices] = self.values[k] > 0
        return out

    def positives(self, k: int) -> int:
        """Points in candidate `k`'s mask."""
        return int((self.values[k] > 0).sum())

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, int | np.integer):
            return self.row(int(key))
        return np.asarray(self)[key]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        rows = np.stack([self.row(k) for k in range(len(self))]) if len(self) else np.zeros(
            (0, self.num_points), np.float32)
        return rows if dtype is None else rows.astype(dtype)

    def concat(self, other: CandidateLogits) -> CandidateLogits:
        """These candidates followed by `other`'s (on the union of both point sets)."""
        if self.indices is None or other.indices is None:
            if self.indices is None and other.indices is None:
                return CandidateLogits(np.concatenate([self.values, other.values]), None, self.num_points)
            return CandidateLogits.dense(np.concatenate([np.asarray(self), np.asarray(other)]))
        if np.array_equal(self.indices, other.indices):
            return CandidateLogits(np.concatenate([self.values, other.values]), self.indices,
                                   self.num_points)
        union = np.union1d(self.indices, other.indices)
        values = np.full((len(self) + len(other), union.size), OUTSIDE_LOGIT, np.float32)
        values[: len(self), np.searchsorted(union, self.indices)] = self.values
        values[len(self):, np.searchsorted(union, other.indices)] = other.values
        return CandidateLogits(values, union, self.num_points)
