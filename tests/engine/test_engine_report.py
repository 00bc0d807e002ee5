"""The preprocessing report is made JSON-safe per page without a dumps/loads round trip: same result."""

from __future__ import annotations

import json

import numpy as np

from ocr_service.pipeline import _plain


def test_report_values_become_what_a_json_round_trip_gives() -> None:
    report = {
        "scale": np.float64(2.0),
        "steps": [{"name": "deskew", "applied": np.bool_(True), "params": {"angle": np.float32(1.5)}}],
        "transform": {"size": (np.int64(640), 480), "to_source": np.eye(3)},
        3: None,
        "nested": ((1, 2.5), ["x"]),
    }
    plain = _plain(report)
    assert plain == json.loads(json.dumps(report, default=lambda value: value.tolist()))
    assert type(plain["scale"]) is float and type(plain["steps"][0]["applied"]) is bool
    assert type(plain["transform"]["size"][0]) is int and plain["transform"]["to_source"][0] == [1.0, 0.0, 0.0]
    assert "3" in plain and plain["nested"] == [[1, 2.5], ["x"]]
