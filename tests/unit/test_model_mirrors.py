"""The API models that mirror a domain type field for field stay in step with it.

vhpc.models may not import the domain (cluster, observe) and the domain may not import
vhpc.models (tests/unit/test_layering.py), so these pairs are written twice on purpose;
this test is what keeps the copies from drifting apart.
"""

from __future__ import annotations

import dataclasses

from vhpc import models
from vhpc.cluster import faults
from vhpc.observe.log_store import LogRow


def test_fault_kinds_are_the_same_in_the_api_and_the_domain() -> None:
    assert [k.value for k in models.FaultKind] == [k.value for k in faults.FaultKind]


def test_a_log_line_has_the_fields_of_a_stored_log_row() -> None:
    row_fields = [f.name for f in dataclasses.fields(LogRow)]
    assert list(models.LogLine.model_fields) == row_fields
    row = LogRow(id=1, ts=2.0, node="compute0", service="slurmd", level="info",
                 message="up", kind="")
    assert models.LogLine.model_validate(row.to_dict()).model_dump() == row.to_dict()
