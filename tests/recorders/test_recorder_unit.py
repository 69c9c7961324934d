"""Pure parts of the recorders: the settings' checks, the ring's shape, which workloads an
alert names, and the Alertmanager payload's checks (controller/recorder_model.py,
controller/alertmanager.py)."""

from __future__ import annotations

import pytest

from podcap.controller.alertmanager import firing
from podcap.controller.recorder_model import RecorderConfig
from podcap.errors import InvalidArgument
from podcap.model import Workload


def workload(**kw: object) -> Workload:
    base: dict = {"id": "a" * 64, "name": "web-1_web", "runtime": "cri", "node": "n1",
                  "namespace": "shop", "pod_name": "web-1", "container_name": "web",
                  "labels": {"app": "web"}}
    return Workload(**{**base, **kw})


def test_the_ring_is_the_byte_cap_in_at_most_ten_files() -> None:
    spec = RecorderConfig.of({"name": "r", "labels": "app=web", "bytes_mb": 25}).spec()
    assert (spec.duration, spec.file_number, spec.file_size_mb) == (0, 10, 2)
    spec = RecorderConfig.of({"name": "r", "labels": "app=web", "bytes_mb": 2}).spec()
    assert (spec.file_number, spec.file_size_mb) == (2, 1)


@pytest.mark.parametrize(("body", "field"), [
    ({"window_s": 0}, "window_s"), ({"after_s": 601}, "after_s"),
    ({"cooldown_s": -1}, "cooldown_s"), ({"max_snapshots": 0}, "max_snapshots"),
    ({"bytes_mb": True}, "bytes_mb"), ({"alert_labels": {"pod": "podname"}}, "alert_labels"),
    ({"alert_labels": {"bad label": "pod"}}, "alert_labels"), ({"enabled": "yes"}, "enabled"),
    ({"alertnames": "X"}, "alertnames"), ({"filter": "x" * 5000}, "filter"),
])
def test_each_bad_setting_is_named(body: dict, field: str) -> None:
    with pytest.raises(InvalidArgument, match=field):
        RecorderConfig.of({"name": "r", "labels": "app=web", **body})


def test_settings_round_trip_through_the_row() -> None:
    config = RecorderConfig.of({"name": "r", "namespace": "shop", "window_s": 30,
                                "bytes_mb": 4, "after_s": 2, "alertnames": ["A"],
                                "alert_labels": {"app": "label:app"}})
    assert RecorderConfig.from_row(config.to_row("b" * 24, "admin", 1.0)) == config


def test_an_alert_names_the_members_its_labels_match() -> None:
    default = RecorderConfig.of({"name": "r", "labels": "app=web"})
    w = workload()
    assert default.names({"alertname": "X", "namespace": "shop", "pod": "web-1"}, w)
    assert default.names({"alertname": "X", "namespace": "shop"}, w)  # the whole namespace
    assert not default.names({"alertname": "X", "namespace": "shop", "pod": "web-2"}, w)
    assert not default.names({"alertname": "X", "severity": "page"}, w)  # names nothing
    by_label = RecorderConfig.of({"name": "r", "labels": "app=web", "alertnames": ["Slow"],
                                  "alert_labels": {"service": "label:app"}})
    assert by_label.names({"alertname": "Slow", "service": "web"}, w)
    assert not by_label.names({"alertname": "Other", "service": "web"}, w)


def test_firing_alerts_and_their_keys() -> None:
    alerts = firing({"version": "4", "status": "firing", "alerts": [
        {"status": "firing", "labels": {"alertname": "A"}, "fingerprint": "f",
         "startsAt": "t1"},
        {"status": "resolved", "labels": {"alertname": "B"}}]})
    assert [(a.labels, a.key) for a in alerts] == [({"alertname": "A"}, "f@t1")]


@pytest.mark.parametrize(("payload", "field"), [
    ([], "body"), ({"version": "3", "alerts": []}, "version"), ({"version": "4"}, "alerts"),
    ({"version": "4", "alerts": [1]}, r"alerts\[0\]"),
    ({"version": "4", "alerts": [{"status": "x", "labels": {}}]}, r"alerts\[0\].status"),
    ({"version": "4", "alerts": [{"status": "firing", "labels": {"a": 1}}]},
     r"alerts\[0\].labels"),
    ({"version": "4", "alerts": [{"status": "firing", "labels": {}, "fingerprint": 3}]},
     r"alerts\[0\].fingerprint"),
])
def test_a_malformed_payload_names_the_field(payload: object, field: str) -> None:
    with pytest.raises(InvalidArgument, match=field):
        firing(payload)
