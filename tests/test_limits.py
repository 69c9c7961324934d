"""`GET /api/limits` (model.spec_limits for the capture spec's fields, limits.as_dict for the
rest): the names and values the UI's capture form and the CLI read, as the README's table
documents them."""

from __future__ import annotations

from podcap import limits
from podcap.model import CaptureSpec, spec_limits


def served() -> dict[str, object]:
    """What GET /api/limits serves of these two (quotas and policies are added by the route)."""
    return {**spec_limits(), **limits.as_dict()}


def test_as_dict_is_the_documented_table() -> None:
    table = served()
    assert [f["name"] for f in table.pop("spec_fields")] == [  # type: ignore[attr-defined]
        "duration", "file_number", "file_size_mb", "filter", "snaplen", "buffer_kib"]
    assert table == {
        "file_number_default": 5, "file_number_min": 1, "file_number_max": 50,
        "file_size_mb_default": 2, "file_size_mb_min": 1, "file_size_mb_max": 1000,
        "duration_default": 0, "duration_min": 0, "duration_max": 86_400,
        "snaplen_default": 0, "snaplen_min": 0, "snaplen_max": 262_144,
        "buffer_kib_default": 8192, "buffer_kib_min": 256, "buffer_kib_max": 262_144,
        "filter_max_chars": 4096,
        "download_limit_default": 100 * 1024 * 1024,
        "join_token_ttl_s_default": 3600, "join_token_ttl_s_min": 60,
        "join_token_ttl_s_max": 30 * 86_400,
        "join_token_uses_default": 1, "join_token_uses_max": 1000,
        "agent_port_default": 10444,
    }


def test_the_defaults_served_are_a_spec_s_defaults() -> None:
    """The form starts from what a start without those fields would get."""
    table, spec = served(), CaptureSpec()
    assert (table["file_number_default"], table["file_size_mb_default"],
            table["duration_default"], table["snaplen_default"],
            table["buffer_kib_default"]) == (spec.file_number, spec.file_size_mb,
                                              spec.duration, spec.snaplen, spec.buffer_kib)
