"""Container runtimes behind one small interface (``base.ContainerRuntime``)."""
