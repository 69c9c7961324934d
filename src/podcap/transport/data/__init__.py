"""The data channel: a remote download's bytes, agent → controller, over a TLS connection of
their own (issue 23, figure 6).

gRPC-Python costs ~1 CPU second per GB to receive a stream of 1 MiB messages on this machine
(``bench/grpc_floor.py``), twice the controller's whole budget; one mutual-TLS socket costs
~0.4. So the session (gRPC) carries the ``Download`` command, and the bytes come on a
connection the agent opens to the controller's data port for that one download:

- ``wire.py``: the framing both sides speak, and both sides' TLS contexts (cluster CA, mutual);
- ``sender.py``: the agent's end (a thread of its upload pool, a blocking socket);
- ``listener.py``: the controller's data port, on the HTTP server's event loop: who the peer
  is comes from its verified certificate, never from what it sends;
- ``incoming.py``: the one-time tickets (a ``Download`` command's ``download_id``) and the
  download read from its connection, frame by frame, by the HTTP response on the same loop.
"""
