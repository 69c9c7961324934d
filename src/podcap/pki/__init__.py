"""The cluster's certificate authority: one identity per agent, proven by mutual TLS.

The controller keeps a small CA (EC P-256, SHA-256) in its data dir. An agent joins with a
one-time token and a CSR; the CA ignores everything the CSR asks for except its key and issues
a certificate whose URI SAN is ``podcap://agent/<agent id>``. The controller reads the agent id
of every call from that SAN (``names.agent_id_of``), never from a message, so one agent's key
cannot speak for another.

Two listeners use this package:

- the **agent listener** (mutual TLS) presents ``listener.server_pair(ca)``: a leaf signed by
  the CA for the DNS name ``CONTROLLER_NAME``, and accepts only client certificates from the CA;
- the **join listener** (server TLS only) presents ``ClusterCA.join_pair()``: the CA certificate
  itself. An agent has no trust anchor yet, so it fetches that certificate with an unverified
  handshake, compares its SHA-256 with the fingerprint in its join token, and then trusts it as
  root. The CA certificate therefore carries the DNS SAN ``CONTROLLER_NAME`` and the key usage
  digitalSignature besides keyCertSign and cRLSign.

One job a module; import from them (this package re-exports nothing):

- ``names``     the names a certificate carries (controller DNS name, agent and node URIs), read
                back from a verified peer, and a certificate's fingerprint
- ``csr``       keys and certificate requests: the agent makes one, the CA checks one
- ``ca``        the CA itself (``ClusterCA``): made or loaded, signing agents and leaves
- ``listener``  the controller's agent-listener pair, kept on disk and renewed near its end

Files (in the data dir, keys 0600, every write atomic)::

    ca.crt, ca.key                          the CA (unless given with cert= / key=)
    agent-listener.crt, agent-listener.key  the agent listener's leaf, re-issued when missing,
                                            not from this CA, or near its end
"""
