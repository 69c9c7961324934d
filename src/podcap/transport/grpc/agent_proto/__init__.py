"""Generated gRPC code for podcap.agent.v1 (``make proto``); only the transport imports it."""
