"""Ensembl gene ids: what one looks like, and its identity without the version.

Annotation sets and label files write the same gene as ``ENSG00000000003.14``, ``ENSG00000000003`` or
``ENSG00000182378.12_PAR_Y``; ingest (gene maps), the pairs stage (genes joined across sets) and the
probe's label joins compare them without the version.
"""

from __future__ import annotations

import re

import pandas as pd

ENSEMBL_GENE = re.compile(r"ENS[A-Z]*G\d{6,}")
# An Ensembl id's version (".14") and PAR_Y tag are not part of its identity.
ENSEMBL_VERSION = re.compile(r"\.\d+(?:_PAR_Y)?$")


def unversioned(ids: pd.Series) -> pd.Series:
    """``ENSG00000000003.14`` -> ``ENSG00000000003`` (ids without a version are left as they are)."""
    return ids.astype(str).str.replace(ENSEMBL_VERSION, "", regex=True)


def ensembl_gene_keys(ids: pd.Series) -> pd.Series:
    """Per id: the unversioned Ensembl gene id, or null where the id is no Ensembl gene id."""
    return unversioned(ids).where(ids.astype(str).str.match(ENSEMBL_GENE))
