"""`CandidateLogits`: a click's logits kept on the points that answered, full rows on demand."""

from __future__ import annotations

import numpy as np

from pointsam.app.candidates import CandidateLogits
from pointsam.scene import OUTSIDE_LOGIT


def test_rows_masks_and_dense_view_fill_outside_points():
    c = CandidateLogits(np.array([[1.0, -2.0], [-1.0, 3.0]], np.float32), np.array([1, 4]), 6)
    assert c.shape == (2, 6) and len(c) == 2
    np.testing.assert_array_equal(c.row(0), [OUTSIDE_LOGIT, 1.0, OUTSIDE_LOGIT, OUTSIDE_LOGIT, -2.0,
                                             OUTSIDE_LOGIT])
    assert c.mask(1).tolist() == [False, False, False, False, True, False] and c.positives(0) == 1
    np.testing.assert_array_equal(np.asarray(c)[1], c[1])
    dense = CandidateLogits.dense(np.arange(6, dtype=np.float32).reshape(1, 6) - 2)
    assert dense.indices is None and dense.positives(0) == 3


def test_concat_of_different_regions_is_on_their_union():
    a = CandidateLogits(np.array([[1.0, 2.0]], np.float32), np.array([0, 2]), 5)
    b = CandidateLogits(np.array([[5.0, 6.0], [7.0, 8.0]], np.float32), np.array([2, 3]), 5)
    both = a.concat(b)
    assert both.indices.tolist() == [0, 2, 3] and len(both) == 3
    np.testing.assert_array_equal(np.asarray(both), np.concatenate([np.asarray(a), np.asarray(b)]))
    same = b.concat(b)
    assert same.indices is b.indices and same.values.shape == (4, 2)
    mixed = a.concat(CandidateLogits.dense(np.zeros((1, 5), np.float32)))
    assert mixed.indices is None and np.asarray(mixed).shape == (2, 5)


def test_row_into_a_reused_buffer_overwrites_what_was_there():
    a = CandidateLogits(np.array([[1.0, 2.0]], np.float32), np.array([0, 2]), 4)
    b = CandidateLogits(np.array([[5.0]], np.float32), np.array([3]), 4)
    buf = np.empty(4, np.float32)
    assert a.row(0, out=buf) is buf
    np.testing.assert_array_equal(b.row(0, out=buf), [OUTSIDE_LOGIT, OUTSIDE_LOGIT, OUTSIDE_LOGIT, 5.0])
