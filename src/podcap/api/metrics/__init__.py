"""Prometheus metrics: what an operator graphs and alerts on (docs/OPERATIONS.md).

Two kinds of series, one registry (``registry.Metrics``) per application:

- **Request metrics** (``podcap_http_*``, ``requests.py``) are counted as requests pass, labelled
  by route *template* (``/api/captures/{cid}``), never the raw path, so ids typed by clients
  cannot grow the label set.
- **State metrics** (captures, their counters, disk, kernel buffers, agents; ``state.py``) are
  read from the ``CaptureService`` at scrape time. Nothing is cached between scrapes, so a
  deleted capture's series are gone from the next scrape: there are no stale series to forget.

Who may read them is decided in ``access.py`` (a bearer token or an admin session);
``listener.py`` serves them on a separate listener. Import from the submodules.
"""
