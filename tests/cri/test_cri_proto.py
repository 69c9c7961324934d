"""The CRI subset keeps upstream's wire format: package, service and field numbers.

The table below is transcribed from k8s.io/cri-api pkg/apis/runtime/v1/api.proto; a renumbered
or renamed field would still compile and then silently read the wrong data from a real node.
No containerd needed.
"""

from __future__ import annotations

from podcap.runtime.cri_proto import api_pb2 as pb

UPSTREAM_FIELDS = {
    "VersionResponse": {"version": 1, "runtime_name": 2, "runtime_version": 3,
                        "runtime_api_version": 4},
    "PodSandboxMetadata": {"name": 1, "uid": 2, "namespace": 3, "attempt": 4},
    "PodSandboxConfig": {"metadata": 1, "hostname": 2, "log_directory": 3, "dns_config": 4,
                         "labels": 6, "annotations": 7, "linux": 8},
    "LinuxPodSandboxConfig": {"cgroup_parent": 1, "security_context": 2, "sysctls": 3},
    "LinuxSandboxSecurityContext": {"namespace_options": 1, "privileged": 6},
    "NamespaceOption": {"network": 1, "pid": 2, "ipc": 3, "target_id": 4},
    "PodSandboxStatusRequest": {"pod_sandbox_id": 1, "verbose": 2},
    "PodSandboxNetworkStatus": {"ip": 1, "additional_ips": 2},
    "Namespace": {"options": 2},
    "LinuxPodSandboxStatus": {"namespaces": 1},
    "PodSandboxStatus": {"id": 1, "metadata": 2, "state": 3, "created_at": 4, "network": 5,
                         "linux": 6, "labels": 7, "annotations": 8, "runtime_handler": 9},
    "PodSandboxStatusResponse": {"status": 1, "info": 2, "containers_statuses": 3,
                                 "timestamp": 4},
    "PodSandbox": {"id": 1, "metadata": 2, "state": 3, "created_at": 4, "labels": 5,
                   "annotations": 6, "runtime_handler": 7},
    "ContainerConfig": {"metadata": 1, "image": 2, "command": 3, "args": 4, "working_dir": 5,
                        "envs": 6, "labels": 9, "annotations": 10, "log_path": 11, "linux": 15},
    "LinuxContainerSecurityContext": {"privileged": 2, "namespace_options": 3},
    "Container": {"id": 1, "pod_sandbox_id": 2, "metadata": 3, "image": 4, "image_ref": 5,
                  "state": 6, "created_at": 7, "labels": 8, "annotations": 9, "image_id": 10},
    "ContainerStatusRequest": {"container_id": 1, "verbose": 2},
    "ContainerStatus": {"id": 1, "metadata": 2, "state": 3, "created_at": 4, "started_at": 5,
                        "finished_at": 6, "exit_code": 7, "image": 8, "image_ref": 9,
                        "reason": 10, "message": 11, "labels": 12, "annotations": 13,
                        "log_path": 15, "image_id": 17},
    "ContainerStatusResponse": {"status": 1, "info": 2},
    "CreateContainerRequest": {"pod_sandbox_id": 1, "config": 2, "sandbox_config": 3},
    "StopContainerRequest": {"container_id": 1, "timeout": 2},
}
UPSTREAM_ENUMS = {
    "NamespaceMode": {"POD": 0, "CONTAINER": 1, "NODE": 2, "TARGET": 3},
    "PodSandboxState": {"SANDBOX_READY": 0, "SANDBOX_NOTREADY": 1},
    "ContainerState": {"CONTAINER_CREATED": 0, "CONTAINER_RUNNING": 1, "CONTAINER_EXITED": 2,
                       "CONTAINER_UNKNOWN": 3},
}


def test_package_and_services_are_upstreams() -> None:
    assert pb.DESCRIPTOR.package == "runtime.v1"
    assert set(pb.DESCRIPTOR.services_by_name) == {"RuntimeService", "ImageService"}
    assert pb.DESCRIPTOR.services_by_name["RuntimeService"].full_name == "runtime.v1.RuntimeService"


def test_field_numbers_are_upstreams() -> None:
    for message, fields in UPSTREAM_FIELDS.items():
        descriptor = pb.DESCRIPTOR.message_types_by_name[message]
        for name, number in fields.items():
            assert descriptor.fields_by_name[name].number == number, f"{message}.{name}"


def test_enum_values_are_upstreams() -> None:
    for enum, values in UPSTREAM_ENUMS.items():
        descriptor = pb.DESCRIPTOR.enum_types_by_name[enum]
        assert {v.name: v.number for v in descriptor.values} == values
