"""The one CDS / exon-end check that validate, the schema, the track store and embedding share."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from isoclr.coordinates import CoordinateError, cds_inside, exon_ends_inside, require_inside
from isoclr.errors import IsoclrError


@pytest.mark.parametrize(
    "start, end, inside", [(0, 3, True), (0, 10, True), (2, 2, False), (3, 2, False), (-1, 3, False), (0, 11, False)]
)
def test_cds_inside_on_scalars_numpy_and_nullable_pandas(start, end, inside):
    assert bool(cds_inside(start, end, 10)) is inside
    assert cds_inside(np.array([start]), np.array([end]), np.array([10])).tolist() == [inside]
    answer = cds_inside(pd.array([start, None], dtype="Int64"), pd.array([end, None], dtype="Int64"), 10)
    assert answer[0] == inside and pd.isna(answer[1])  # unknown stays unknown: the caller decides


def test_exon_ends_inside_elementwise():
    assert exon_ends_inside(np.array([-1, 0, 9, 10]), 10).tolist() == [False, True, True, False]


def test_require_inside_names_the_record_and_is_a_project_error():
    require_inside(0, 9, np.array([4, 8]), 9)
    require_inside(None, None, None, 9)
    with pytest.raises(CoordinateError, match=r"^T1: CDS \[0, 12\) is not inside a 9-nt sequence$"):
        require_inside(0, 12, None, 9, record="T1")
    with pytest.raises(CoordinateError, match=r"exon ends \[4, 9\] fall outside a 9-nt sequence"):
        require_inside(None, None, np.array([4, 9]), 9)
    assert issubclass(CoordinateError, IsoclrError) and issubclass(CoordinateError, ValueError)
