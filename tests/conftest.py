"""Fixtures over real parts: one `podcap serve` and one pair of talking containers per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import Server, WebPair, running_server, web_pair


def _share_default_tls() -> None:
    """Every httpx client made with the default ``verify=True`` shares one TLS context.

    httpx builds a new one for each client, reading and parsing the CA bundle: 29 ms of CPU a
    client on this machine, and the tests make thousands (each helper call, each poll of a
    ``wait_for``, each health check of a starting server). A context is safe to share: the
    tests' clients are all HTTP/1.1, so the one setting httpcore makes on it (ALPN) is the same
    for all. The function is httpx's private one (httpx is pinned);
    tests/test_support_unit.py fails if the sharing stops working."""
    import functools

    import httpx._transports.default as transports

    make = transports.create_ssl_context
    shared = functools.cache(make)

    def create(verify: object = True, cert: object = None, trust_env: bool = True) -> object:
        if verify is True and cert is None and trust_env:
            return shared()
        return make(verify=verify, cert=cert, trust_env=trust_env)  # type: ignore[arg-type]

    transports.create_ssl_context = create  # type: ignore[assignment]


_share_default_tls()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("serve")) as srv:
        yield srv


@pytest.fixture(scope="module")
def pair() -> Iterator[WebPair]:
    with web_pair() as p:
        yield p


# Databases: every behaviour that touches the controller's database runs on SQLite and on a
# private PostgreSQL (tests/pg.py). Imports are local so tests without a database need neither.
@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """One private PostgreSQL for the session (as ``nobody`` when run as root; see pg.py)."""
    import tempfile
    from pathlib import Path

    from tests.pg import private_postgres

    with private_postgres(Path(tempfile.gettempdir())) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """An empty database of each kind: a new SQLite file, or a new database on the session's
    PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'podcap.db'}"
    from tests.pg import new_database

    return new_database(request.getfixturevalue("postgres_url"))


# ---- both cores: pytest-xdist ---------------------------------------------------------------
# `make test` runs `pytest -n 4` (the Makefile's PYTEST_ARGS): four workers on two cores, as
# the suite waits on real parts (containers, tcpdump, timers) much of its time (-n 2: 564 s,
# -n 3: 424 s on 2026-12-07 morning; by evening, 1,662 tests, -n 3 took 478 s with the CPUs
# idle 29 % of it). The unit of work handed to a
# worker is a module: its tests and its module-scoped fixtures (a server, a container pair) stay
# in one worker, as without xdist. The modules that enter a machine-wide test bed (BEDS:
# tests/cri's containerd on the fixed bridge podcap-cri0, tests/cluster's net bed on
# 10.231.0.0/24, each held under a file lock in /run/lock) are one unit: one worker runs them
# all, one after another, rather than one worker waiting on the other's lock. Units are handed
# out in collection order, the longest first (LONGEST_FIRST), so the workers finish together.
# (xdist's own `--dist loadgroup` cannot be used: it renames node ids through an
# attribute pytest 9 no longer reads, and its groups are silently ignored.)
BEDS = "beds"
BED_MODULES = ("tests/cluster/test_netbed.py", "tests/cluster/test_nodes.py",
               "tests/cri/test_cri_capture.py", "tests/cri/test_cri_runtime.py",
               "tests/faults/test_cri_restart.py", "tests/groups/test_group_cluster.py",
               "tests/ha/test_failover.py")
# The benchmarks' smoke groups are units of their own: each is a minute of one worker.
SMOKE = "tests/test_bench_smoke.py"
# The longest units (2026-12-08, -n 4 on 2 cores, seconds of their tests: beds 330, the smoke
# groups 20-77 each, the rogue agents 130, the account edges 101, captures 81, accounts 77,
# identity 76, follow 76, the main UI 75; the rest 72 or less, of 2,839 s in all).
LONGEST_FIRST: tuple[str, ...] = (
    BEDS, SMOKE, "tests/security/test_rogue_agent.py", "tests/security/test_accounts_edge.py",
    "tests/test_capture.py", "tests/security/test_accounts.py", "tests/cluster/test_identity.py",
    "tests/live/test_follow.py", "tests/ui/test_ui.py")


def unit_of(nodeid: str) -> str:
    """The unit of work a test belongs to: its module, BEDS, or one smoke group."""
    module = nodeid.split("::")[0]
    if module == SMOKE:
        return nodeid
    return BEDS if module in BED_MODULES else module


@pytest.hookimpl(optionalhook=True)  # an xdist hook
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    from xdist.scheduler import LoadScopeScheduling

    class UnitScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return unit_of(nodeid)

    config.option.loadscopereorder = False  # collection order: see pytest_collection_modifyitems
    return UnitScheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from tests.cluster import netbed
    from tests.cri import cri_testbed

    for item in items:  # a module that enters a bed and is not in BED_MODULES would wait on
        module = vars(item.module) if isinstance(item, pytest.Function) else {}  # the lock
        uses_bed = item.get_closest_marker("cri") or any(
            value in (netbed, cri_testbed) for value in module.values())
        if uses_bed and unit_of(item.nodeid) != BEDS:
            raise pytest.UsageError(f"{item.nodeid} enters a test bed: add its module to "
                                    "BED_MODULES in tests/conftest.py")
    if hasattr(config, "workerinput"):  # every worker sorts its (identical) collection alike
        alone = {unit_of(i.nodeid) for i in items if i.get_closest_marker("alone")}

        def rank(item: pytest.Item) -> int:
            unit = unit_of(item.nodeid)
            if unit in alone:  # last: see `alone` below
                return len(LONGEST_FIRST) + 1
            module = unit.split("::")[0]  # a smoke group ranks as its module
            return LONGEST_FIRST.index(module) if module in LONGEST_FIRST else \
                len(LONGEST_FIRST)
        items.sort(key=rank)  # stable: a module's own order is kept


# A test marked `alone` measures time on the wall clock against a bound (a p99, a median, a
# ratio of two timings): under xdist it runs while no other worker runs a test (module
# fixtures of the other workers, such as a container pair's 5 requests a second, go on). Every
# other test holds the run's lock shared; an `alone` test holds it exclusively. A turnstile
# taken first by both kinds keeps an `alone` test from waiting for ever behind a stream of
# shared holders. While it waits for the others' current tests to end (one is the benchmarks'
# smoke run, a single test of two minutes) every worker waits: so the units holding `alone`
# tests (each a small module of its own) are handed out last, when the others are ending.
@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> object:
    if not hasattr(item.config, "workerinput"):
        return (yield)
    import fcntl

    turnstile, lock = _run_locks(item.config)
    mode = fcntl.LOCK_EX if item.get_closest_marker("alone") else fcntl.LOCK_SH
    fcntl.flock(turnstile, fcntl.LOCK_EX)
    try:
        fcntl.flock(lock, mode)
    finally:
        fcntl.flock(turnstile, fcntl.LOCK_UN)
    try:
        return (yield)
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)


def _run_locks(config: pytest.Config) -> tuple[object, object]:
    """The run's two lock files, in the base temp dir its workers share (opened once)."""
    if not hasattr(config, "_podcap_run_locks"):
        shared = config._tmp_path_factory.getbasetemp().parent  # type: ignore[attr-defined]
        config._podcap_run_locks = tuple(  # type: ignore[attr-defined]
            open(shared / name, "a") for name in ("alone-turnstile.lock", "alone.lock"))
    return config._podcap_run_locks  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """Debian's Chromium driven by Playwright (no browser download), in a network namespace of
    its own (tests/ui/browser_netns.py says why), so a UI test runs beside the other workers'
    containers. One per session: the UI suite and tests/ha's browser test share it (the
    namespace is named after this process)."""
    from playwright.sync_api import sync_playwright

    from tests.ui.browser_netns import isolated_chromium

    scratch = tmp_path_factory.mktemp("chromium")
    with isolated_chromium(CHROMIUM, scratch) as executable, \
            sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=executable, headless=True,
                                     args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
