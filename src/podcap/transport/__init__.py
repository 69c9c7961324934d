"""How the controller reaches an agent: one interface, in-process or over the network."""
