"""podcap's own container is found by the runtime's bind mounts, never by the host's mount table
(which names the rootfs of every running container: an agent on the host would refuse them all)."""

from __future__ import annotations

from podcap.agent.workloads import runtime_mount_ids

ID = "1794fae9a4ceb158f8fc4e3caa76cdc264fe74238db258b99c114f51b67f2489"
OTHER = "6fc5b98d2922a7e27a414b2a86aee456228001461345f2e63cfe7b5a390f12d8"

IN_DOCKER = f"""\
3413 3400 0:300 / / rw,relatime - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/X
3484 3413 254:0 /var/lib/docker/containers/{ID}/resolv.conf /etc/resolv.conf rw - ext4 /dev/vda rw
3485 3413 254:0 /var/lib/docker/containers/{ID}/hostname /etc/hostname rw - ext4 /dev/vda rw
"""
CRI = "/var/lib/containerd/io.containerd.grpc.v1.cri"
TASKS = "io.containerd.runtime.v2.task"
IN_CRI_POD = f"""\
900 800 254:0 {CRI}/sandboxes/{ID}/hostname /etc/hostname rw - ext4 /dev/vda rw
"""
ON_HOST = f"""\
25 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
700 25 0:90 / /run/containerd/{TASKS}/k8s.io/{OTHER}/rootfs rw - overlay overlay rw
701 25 0:91 / /tmp/podcap-cri-ab/state/{TASKS}/podcap/{OTHER}/rootfs rw - overlay overlay rw
"""


def test_docker_and_cri_bind_mounts_name_the_container() -> None:
    assert runtime_mount_ids(IN_DOCKER) == {ID}
    assert runtime_mount_ids(IN_CRI_POD) == {ID}


def test_the_hosts_mount_table_names_no_container_of_ours() -> None:
    assert runtime_mount_ids(ON_HOST) == set()
