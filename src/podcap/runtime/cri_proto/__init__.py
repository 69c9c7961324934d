"""Generated gRPC stubs for a subset of the CRI ``runtime.v1`` API (see ``api.proto``).

``api_pb2.py`` and ``api_pb2_grpc.py`` are made by ``make proto`` (run by ``make setup``) and
are not committed; only ``podcap.runtime.cri`` and the CRI test bed import them.
"""
