"""The transport of `podcap serve`: the agent lives in the controller's process. The agent's
uplink serves one too (``transport/grpc/uplink.py``), with streams cut to gRPC-message size."""

from __future__ import annotations

from podcap import limits
from podcap.agent.manager import Agent
from podcap.model import AgentInfo, Capture, CaptureSpec, Workload
from podcap.streams import PcapRequest, PcapStream


class InProcessTransport:
    def __init__(self, agent: Agent, chunk: int = limits.DOWNLOAD_CHUNK_BYTES) -> None:
        self.agent = agent
        self.chunk = chunk  # bytes per block a stream reads (limits.py says why each size)

    def info(self) -> AgentInfo:
        return self.agent.info

    def list_workloads(self) -> list[Workload]:
        return self.agent.list_workloads()

    def check_filter(self, expression: str) -> None:
        self.agent.check_filter(expression)

    def start(self, workload_id: str, spec: CaptureSpec, owner: str = "") -> Capture:
        return self.agent.start(workload_id, spec, owner)

    def stop(self, capture_id: str) -> Capture:
        return self.agent.stop(capture_id)

    def remove(self, capture_id: str) -> None:
        self.agent.remove(capture_id)

    def list_captures(self) -> list[Capture]:
        return self.agent.captures()

    def get_capture(self, capture_id: str) -> Capture:
        return self.agent.capture(capture_id)

    def known_captures(self) -> list[Capture]:
        return self.agent.captures()

    def stream_pcap(self, capture_id: str, request: PcapRequest = PcapRequest()) -> PcapStream:
        return self.agent.stream_pcap(capture_id, request, chunk=self.chunk)

    def document(self, capture_id: str, name: str, params: dict[str, str] | None = None,
                 ) -> dict[str, object]:
        return self.agent.document(capture_id, name, params or {})

    def close(self) -> None:
        self.agent.close()
