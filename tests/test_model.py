"""Capture spec validation: one set of rules, clear words."""

from __future__ import annotations

import pytest

from podcap import limits
from podcap.errors import InvalidArgument
from podcap.ids import capture_id, workload_id
from podcap.model import CaptureSpec


def test_defaults_are_neuvectors() -> None:
    spec = CaptureSpec()
    assert (spec.file_number, spec.file_size_mb, spec.duration) == (5, 2, 0)
    assert spec.max_bytes == 10_000_000


@pytest.mark.parametrize("field,value,words", [
    ("file_number", 0, "between 1 and 50"),
    ("file_number", 51, "Maximum pcap file count is 50"),
    ("file_size_mb", 0, "file_size_mb must be between 1 and 1000"),
    ("file_size_mb", 1001, "file_size_mb must be between"),
    ("duration", -1, "duration must be between 0 and 86400"),
    ("duration", 86401, "duration must be between"),
    ("snaplen", 262145, "snaplen must be between"),
    ("buffer_kib", 1, "buffer_kib must be between"),
    ("duration", "5", "must be a whole number"),
    ("file_number", True, "must be a whole number"),
    ("filter", "x" * (limits.FILTER_MAX_CHARS + 1), "the maximum is 4096"),
    ("filter", "tcp\x00", "NUL"),
])
def test_refusals(field: str, value: object, words: str) -> None:
    with pytest.raises(InvalidArgument, match=words):
        CaptureSpec(**{field: value})


@pytest.mark.parametrize("bad", ["../x", "x" * 1000, "", "ABCDEF" * 6, "0" * 31, "g" * 32])
def test_capture_ids_are_validated(bad: str) -> None:
    with pytest.raises(InvalidArgument):
        capture_id(bad)


@pytest.mark.parametrize("bad", ["../etc", "a/b", "-rf", "x" * 300, "", "a b", "..", "a..b"])
def test_workload_ids_are_validated(bad: str) -> None:
    with pytest.raises(InvalidArgument):
        workload_id(bad)


def test_every_spec_field_reaches_every_interface() -> None:
    """The spec is written once (CaptureSpec's fields): the API body, /api/limits, the
    rendering and the CLI options are made from it, so each holds every field."""
    import dataclasses

    from podcap.api.native_captures import SpecBody
    from podcap.cli import spec_options
    from podcap.model import spec_limits

    names = [f.name for f in dataclasses.fields(CaptureSpec)]
    assert list(SpecBody.model_fields) == names
    described = spec_limits()
    assert [f["name"] for f in described["spec_fields"]] == names
    for f in described["spec_fields"]:
        if f["kind"] == "integer":
            assert described[f"{f['name']}_min"] <= f["default"] <= described[f"{f['name']}_max"]
    assert list(CaptureSpec().as_dict()) == names
    assert list(spec_options.FLAGS) == names
    assert described["file_number_max"] == limits.FILE_NUMBER_MAX
