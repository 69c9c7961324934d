"""``podcap-extcap``: podcap as a Wireshark capture interface (the extcap protocol).

Wireshark runs this program to list interfaces (one: ``podcap``), their link types, their
configuration (server, namespace, workload, label selector; the selectors reload their values
from the server), to check a capture filter, and to capture into a fifo. A capture is a normal
podcap capture started on the server (a group capture when a namespace or label selector is
chosen instead of a workload) whose follow stream, as pcapng, is copied into the fifo; it is
stopped when Wireshark stops the capture (SIGTERM) or closes the fifo, and stays on the server
for download. Server and token come from the CLI's login file (``podcap login``), or from
PODCAP_SERVER / PODCAP_TOKEN (or PODCAP_USER + PODCAP_PASSWORD).

One interface with selectors, not one per container: Wireshark reads the interface list once
at start, while the workloads come and go (WIRESHARK.md).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO
from urllib.parse import quote

from podcap import __version__
from podcap.cli import config
from podcap.cli.client import ApiClient
from podcap.cli.live import PipeWatcher, copy_follow, pipe
from podcap.cli.session import Connection, connect
from podcap.errors import InvalidArgument, PodcapError
from podcap.pcap.format import LINKTYPE_LINUX_SLL2

INTERFACE = "podcap"
ANY = "*"  # the namespace selector's "every namespace"
# Wireshark asks for the configuration when it starts: a server that does not answer must not
# hold it up for long.
LIST_TIMEOUT_S = 3.0

# number, call, display, type, extra fields (tooltip, reload, ...)
ARGS: list[tuple[int, str, str, str, dict[str, str]]] = [
    (0, "--server", "Server", "string",
     {"tooltip": "podcap server URL (default: the one `podcap login` saved)"}),
    (1, "--namespace", "Namespace", "selector",
     {"tooltip": "Limit the workload list; alone (no workload): capture the whole namespace",
      "reload": "true", "placeholder": "Reload namespaces"}),
    (2, "--workload", "Workload", "selector",
     {"tooltip": "The container or pod to capture", "reload": "true",
      "placeholder": "Reload workloads"}),
    (3, "--selector", "Label selector", "string",
     {"tooltip": "Capture every matching container instead, e.g. app=web,tier!=db"}),
    (4, "--duration", "Duration (s)", "integer",
     {"tooltip": "Stop after this many seconds; 0 = until Wireshark stops", "default": "0",
      "range": "0,86400"}),
]


def main(argv: list[str] | None = None) -> int:
    ns, _unknown = _parser().parse_known_args(argv)  # unknown options: ignored, by the protocol
    try:
        if ns.extcap_interfaces:
            return _interfaces()
        if ns.extcap_interface and ns.extcap_interface != INTERFACE:
            raise InvalidArgument(f"unknown interface {ns.extcap_interface!r}; podcap-extcap "
                                  f"has one: {INTERFACE}")
        if ns.extcap_dlts:
            print(f"dlt {{number={LINKTYPE_LINUX_SLL2}}}{{name=LINUX_SLL2}}"
                  "{display=Linux cooked capture v2 (tcpdump -i any)}")
            return 0
        if ns.extcap_config:
            return _config(ns)
        if ns.capture:
            return _capture(ns)
        if ns.extcap_capture_filter is not None:
            return _check_filter(ns)
    except PodcapError as exc:
        print(f"podcap: {exc.message}", file=sys.stderr)
        return 1
    print("podcap-extcap: a Wireshark extcap; install it with `podcap extcap install`",
          file=sys.stderr)
    return 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="podcap-extcap", add_help=True)
    for flag in ("--extcap-interfaces", "--extcap-dlts", "--extcap-config", "--capture"):
        p.add_argument(flag, action="store_true")
    for flag in ("--extcap-interface", "--extcap-version", "--extcap-reload-option", "--fifo",
                 "--extcap-capture-filter", "--extcap-control-in", "--extcap-control-out",
                 "--server", "--namespace", "--workload", "--selector"):
        p.add_argument(flag)
    p.add_argument("--duration", type=int, default=0)
    return p


def _field(**fields: str) -> str:
    return "".join(f"{{{k}={v}}}" for k, v in fields.items())


def _clean(text: str) -> str:
    """Values go inside ``{…}``: braces and line breaks would break the line format."""
    return "".join(ch for ch in text if ch not in "{}\r\n")


def _interfaces() -> int:
    print("extcap " + _field(version=__version__))
    print("interface " + _field(value=INTERFACE, display="podcap: container traffic via the "
                                "podcap server"))
    return 0


def _config(ns: argparse.Namespace) -> int:
    reload = ns.extcap_reload_option
    if not reload:
        saved = _saved_server()
        for number, call, display, kind, extra in ARGS:
            fields = {"number": str(number), "call": call, "display": display, "type": kind,
                      **extra}
            if call == "--server" and saved:
                fields["default"] = _clean(saved)
            print("arg " + _field(**fields))
    want = {"namespace": 1, "workload": 2}
    for name, number in want.items():
        if reload and reload != name:
            continue
        for value, display in _values(ns, name):
            print("value " + _field(arg=str(number), value=_clean(value),
                                    display=_clean(display), default="false"))
    return 0


def _values(ns: argparse.Namespace, name: str) -> list[tuple[str, str]]:
    """Selector values from the server; none (and a note on stderr) when it cannot answer,
    so Wireshark still shows the dialog."""
    try:
        with _api(ns.server, timeout=LIST_TIMEOUT_S) as api:
            items = api.workloads()
    except PodcapError as exc:
        if ns.extcap_reload_option:  # asked for by the user; at Wireshark's start: quiet
            print(f"podcap: cannot list workloads: {exc.message}", file=sys.stderr)
        return []
    if name == "namespace":
        spaces = sorted({str(w.get("namespace") or "") for w in items} - {""})
        return [(ANY, "(any namespace)")] + [(n, n) for n in spaces]
    chosen = ns.namespace if ns.namespace not in (None, "", ANY) else None
    out = []
    for w in sorted(items, key=lambda w: (str(w.get("namespace")), str(w.get("name")))):
        if not w.get("cap_sniff") or (chosen and w.get("namespace") != chosen):
            continue
        where = "/".join(x for x in (w.get("namespace"), w.get("pod_name")) if x)
        label = f"{w['name']} ({where + ', ' if where else ''}{w.get('node', '?')})"
        out.append((str(w["name"]), label))
    return out


def _check_filter(ns: argparse.Namespace) -> int:
    """Wireshark's filter check: print nothing for a good filter, the reason for a bad one."""
    expression = ns.extcap_capture_filter
    if not expression.strip():
        return 0
    try:
        with _api(ns.server, timeout=LIST_TIMEOUT_S) as api:
            answer = api.json("POST", "/api/filter/check", json={"filter": expression})
    except PodcapError as exc:  # cannot check now: let the capture's start decide
        print(f"podcap: cannot check the filter: {exc.message}", file=sys.stderr)
        return 0
    if not answer.get("ok"):
        print(str(answer.get("message") or "invalid filter"))
        return 1
    return 0


# ---- capture ----------------------------------------------------------------------------

class _Stopped(BaseException):
    """SIGTERM from Wireshark: stop the capture and leave (a BaseException, as KeyboardInterrupt
    is: no ``except Exception`` on the way may swallow it)."""


def _capture(ns: argparse.Namespace) -> int:
    if not ns.fifo:
        raise InvalidArgument("--capture needs --fifo")
    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGINT, _on_term)
    with _api(ns.server) as api:
        kind, ident = _start(api, ns)
        print(f"podcap: {kind} {ident} started on {api.server}", file=sys.stderr)
        try:
            with open(ns.fifo, "wb", buffering=0) as fifo:
                watcher = PipeWatcher(fifo)
                watcher.start()
                try:
                    _copy(api, kind, ident, fifo)
                finally:
                    watcher.stop()
        except (_Stopped, KeyboardInterrupt, BrokenPipeError):
            pass
        finally:
            _stop(api, kind, ident)
    return 0


def _on_term(signum: int, frame: object) -> None:
    raise _Stopped()


def _start(api: ApiClient, ns: argparse.Namespace) -> tuple[str, str]:
    bpf = ns.extcap_capture_filter or ""
    namespace = ns.namespace if ns.namespace not in (None, ANY) else ""
    if ns.workload:
        from podcap.cli import workloads

        workload = workloads.resolve(api, ns.workload)
        cap = api.start(str(workload["id"]), duration=ns.duration, filter=bpf)
        return "capture", str(cap["id"])
    if ns.selector or namespace:
        body = {"namespace": namespace, "labels": ns.selector or "", "duration": ns.duration,
                "filter": bpf}
        group = api.json("POST", "/api/capture-groups", json=body)["group"]
        return "group", str(group["id"])
    raise InvalidArgument("choose a workload, a namespace or a label selector in the "
                          "interface options (tshark: -o extcap.podcap.workload:NAME)")


def _copy(api: ApiClient, kind: str, ident: str, sink: BinaryIO) -> None:
    if kind == "capture":
        copy_follow(api, ident, sink, "pcapng")
        return
    pipe(api, f"/api/capture-groups/{quote(ident, safe='')}/pcapng", sink, {"follow": "true"})


def _stop(api: ApiClient, kind: str, ident: str) -> None:
    # Neither a second SIGTERM nor the pipe watcher's interrupt (a SIGINT, when tshark closes
    # the fifo as it signals) may cut the stop short: the group would run on with nobody.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        if kind == "capture":
            if api.capture(ident).get("status") == "running":
                api.stop(ident)
        else:
            api.json("POST", f"/api/capture-groups/{quote(ident, safe='')}/stop")
        print(f"podcap: {kind} {ident} stopped; it stays on the server for download",
              file=sys.stderr)
    except PodcapError as exc:
        print(f"podcap: could not stop {kind} {ident}: {exc.message}", file=sys.stderr)


# ---- the server -------------------------------------------------------------------------

def _saved_server() -> str:
    try:
        login = config.load()
    except PodcapError:
        return ""
    return login.server if login else ""


@contextmanager
def _api(server: str | None, timeout: float = 30.0) -> Iterator[ApiClient]:
    env = os.environ
    api = connect(Connection(server=server or env.get("PODCAP_SERVER") or None,
                             user=env.get("PODCAP_USER"), password=env.get("PODCAP_PASSWORD"),
                             token=env.get("PODCAP_TOKEN"), cacert=env.get("PODCAP_CACERT"),
                             insecure=env.get("PODCAP_INSECURE", "") in ("1", "true"),
                             timeout=timeout))
    try:
        yield api
    finally:
        api.close()


def run() -> None:
    """The console script."""
    sys.exit(main())
