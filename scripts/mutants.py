"""`make mutants`: mutmut over podcap's pure modules, each against its own fast unit tests.

    .venv/bin/python scripts/mutants.py                 # every module in TARGETS
    .venv/bin/python scripts/mutants.py throttle ring   # only these (any part of the path)
    MUTANTS_JOBS=1 .venv/bin/python scripts/mutants.py  # one worker (default 2)

Why: a test suite that passes says nothing about whether it would fail. Mutation testing puts
one small fault at a time into the code (`<` for `<=`, a dropped argument, `and` for `or`) and
runs the tests that cover it; a fault that no test notices ("survivor") is a guard without a
test, or dead code. Issue 25 found 13 such faults by hand; this makes finding them a command.

Why mutmut (3.x) and not cosmic-ray: mutmut runs pytest once per module, then forks that warm
process for every mutant and runs only the tests that reached the mutated function. On this
2-core machine a pytest start with podcap's imports costs 1.5 s, which cosmic-ray pays per
mutant (it rewrites the source file in place and starts the test command anew): about 2,900
mutants would spend over half an hour starting pytest alone, where mutmut's whole run takes
about 7 minutes. cosmic-ray editing the work tree in place is a second reason: an interrupted
run leaves a mutated file behind. mutmut mutates inside functions only: module-level
constants (most of limits/) are out of its reach, and are checked by the tests that read
them instead.

Each module runs in its own work directory (build/mutants/<name>/) with a generated
pyproject.toml whose test selection is that module's tests only: no Docker, no server, no
tcpdump that listens. A mutant no selected test reaches counts as a survivor ("no tests").
The surviving mutants, with their diffs, go to build/mutants/survivors.txt and the kill rate
per module to build/mutants/summary.txt; tests/MUTANTS.md says why each one left is accepted.

Not part of `make test` or CI: it takes minutes, and what it finds is read by a person.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build" / "mutants"
MUTMUT = Path(sys.executable).parent / "mutmut"


@dataclass(frozen=True)
class Target:
    """One module under `src/podcap/`, the fast tests that must kill its mutants, and (for a
    module that is only partly pure) the functions to mutate, as `Class.method` or `function`."""

    module: str
    tests: tuple[str, ...]
    only: tuple[str, ...] = ()
    keyword: str = ""  # a pytest -k expression that leaves out the slow tests of a file


# A new pure module is one line here. Tests are pytest files or node ids; none may need Docker,
# a server (PostgreSQL and gRPC included), the network or a real tcpdump: they must be fast,
# and safe to run twice at once.
# test_reader_unit.py's tests that run tshark, tcpdump or a worker process: right for the suite,
# seconds per mutant here (the reader's hot loop is one function, so every test reaches it).
READER_FAST = ("not tshark and not compiles_and_selects and not rotated_files "
               "and not filtered_stream and not low_priority")
TARGETS: tuple[Target, ...] = (
    Target("controller/throttle.py", ("tests/test_throttle.py",)),
    Target("controller/quotas.py", ("tests/test_quotas_unit.py",)),
    Target("controller/join_tokens.py", ("tests/test_join_tokens.py",),
           keyword="not postgresql"),
    Target("controller/resolver.py", ("tests/security/test_resolver.py::test_the_rule",
                                      "tests/security/test_resolver.py::"
                                      "test_a_full_id_is_exact_whatever_its_shape",
                                      "tests/test_resolver_unit.py")),
    Target("controller/selector.py", ("tests/groups/test_selector.py",)),
    Target("limits/__init__.py", ("tests/test_limits.py",)),
    Target("api/ranges.py", ("tests/test_ranges_unit.py",)),
    Target("pcap/ring.py", (
        "tests/test_ring.py",
        "tests/test_range.py::test_every_offset_is_the_same_bytes_as_a_slice",
        "tests/test_range.py::test_offset_skips_files_without_opening_them",
        "tests/test_range.py::test_a_non_pcap_file_is_left_out_of_the_size_too",
        "tests/test_range.py::test_live_offset_drops_the_first_bytes",
        "tests/test_range.py::test_a_ring_of_one_file_has_no_number",
    )),
    Target("pcap/format.py", ("tests/test_ring.py", "tests/live/test_follow_unit.py",
                              "tests/test_tcpdump_unit.py"), keyword="not real_tcpdump"),
    Target("pcap/repair.py", ("tests/test_tcpdump_unit.py",), keyword="repair_tail"),
    Target("capture/command.py", ("tests/test_tcpdump_unit.py",), keyword="not real_tcpdump"),
    Target("capture/tcpdump_log.py", ("tests/test_tcpdump_unit.py",),
           keyword="not real_tcpdump", only=("parse_stats", "exit_reason")),
    Target("pcap/pcapng.py", ("tests/groups/test_pcapng_writer.py",)),
    Target("views.py", ("tests/test_views_unit.py",)),
    Target("transport/data/wire.py", ("tests/security/test_data_port.py",)),
    Target("pcap/gaps.py", ("tests/live/test_follow_unit.py",)),
    Target("pcap/follow.py", ("tests/live/test_follow_unit.py",),
           only=("RingFollower._gap", "RingFollower._marker", "RingFollower._ts")),
    Target("insight/reader.py", ("tests/insight/test_reader_unit.py",), keyword=READER_FAST),
    Target("insight/partial.py", ("tests/insight/test_partial.py",
                                  "tests/insight/test_reader_unit.py"), keyword=READER_FAST),
    Target("insight/conversation.py", ("tests/insight/test_conversation.py",
                                       "tests/insight/test_reader_unit.py::"
                                       "test_conversation_fields_refused")),
    Target("pki/listener.py", ("tests/test_pki.py",), keyword="not mutual_tls and not join_port",
           only=("server_pair", "_is_current")),
    Target("transport/grpc/uplinks.py", ("tests/ha/test_uplinks_unit.py",),
           only=("targets", "resolve_name", "Uplinks._converge")),
)

KILLED = {"killed", "timeout", "caught by type check", "segfault"}


def slug(target: Target) -> str:
    return target.module.removesuffix(".py").replace("/", "-")


def mutant_globs(target: Target) -> list[str]:
    """mutmut's names for the mutants of `only`: `podcap.pki.ca.xǁClusterCAǁissue__mutmut_3`
    for a method, `podcap.pki.listener.x_server_pair__mutmut_3` for a function."""
    base = "podcap." + target.module.removesuffix(".py").replace("/", ".")
    globs = []
    for name in target.only:
        cls, _, func = name.rpartition(".")
        globs.append(f"{base}.xǁ{cls}ǁ{func}__mutmut_*" if cls else f"{base}.x_{func}__mutmut_*")
    return globs


def existing_tests(target: Target) -> list[str]:
    """The target's test files and node ids that exist, then its `-k` expression if any."""
    found = [t for t in target.tests if (ROOT / t.partition("::")[0]).exists()]
    return found + ["-k", target.keyword] if found and target.keyword else found


def pyproject(target: Target) -> str:
    """The work directory's pyproject.toml: mutmut's settings for this module, and pytest's own
    (markers). A module none of whose tests exist yet still gets its mutants made and counted
    (all survive, "no tests"): mutmut is then given a fast test file that cannot reach it."""
    tests = ", ".join(f'"{t}"' for t in existing_tests(target) or ["tests/test_model.py"])
    return (
        "[tool.mutmut]\n"
        'source_paths = ["src"]\n'
        f'only_mutate = ["src/podcap/{target.module}"]\n'
        f"pytest_add_cli_args_test_selection = [{tests}]\n"
        'pytest_add_cli_args = ["-q", "-p", "no:cacheprovider", "-o", "addopts="]\n'
        "use_git_change_detection = false\n"
        "\n"
        '[tool.pytest.ini_options]\ntestpaths = ["tests"]\n'
        'markers = ["cri: needs a private containerd with CRI", "ui: drives a real Chromium"]\n'
    )


def prepare(target: Target) -> Path:
    """A fresh work directory: src and tests are links to the work tree (mutmut copies them
    into its own mutants/ folder), so every run starts from the code as it is now."""
    work = BUILD / slug(target)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    (work / "src").symlink_to(ROOT / "src")
    (work / "tests").symlink_to(ROOT / "tests")
    (work / "pyproject.toml").write_text(pyproject(target))
    return work


def statuses(work: Path) -> dict[str, str]:
    out = subprocess.run([str(MUTMUT), "results", "--all", "true"], cwd=work, text=True,
                         capture_output=True, check=True).stdout
    found = {}
    for line in out.splitlines():
        m = re.match(r"\s*(\S+__mutmut_\d+): (.+)$", line)
        if m:
            found[m.group(1)] = m.group(2).strip()
    return found


SEPARATOR = "\x1e"


def diffs(work: Path, names: list[str]) -> dict[str, str]:
    """Every survivor's diff, from one Python process in the work directory (a `mutmut show`
    each would start Python once per survivor)."""
    if not names:
        return {}
    code = (
        "import sys\n"
        "from mutmut.__main__ import find_mutant, get_diff_for_mutant\n"
        "for name in sys.argv[1:]:\n"
        "    print(get_diff_for_mutant(name, path=find_mutant(name).path), end='\\x1e')\n"
    )
    out = subprocess.run([sys.executable, "-c", code, *names], cwd=work, text=True,
                         capture_output=True, check=False).stdout
    return dict(zip(names, out.split(SEPARATOR), strict=False))


def run(target: Target, jobs: int) -> tuple[int, int, list[str], str, float]:
    work = prepare(target)
    started = time.monotonic()
    with open(work / "mutmut.log", "w") as log:
        subprocess.run([str(MUTMUT), "run", "--max-children", str(jobs), *mutant_globs(target)],
                       cwd=work, stdout=log, stderr=subprocess.STDOUT, check=False)
    took = time.monotonic() - started
    found = statuses(work)
    if target.only:
        globs = mutant_globs(target)
        found = {k: v for k, v in found.items() if any(fnmatch.fnmatch(k, g) for g in globs)}
    if not existing_tests(target):
        print(f"{target.module}: none of its tests exist", file=sys.stderr)
        found = dict.fromkeys(found, "no tests")
    if not found:
        raise SystemExit(f"{target.module}: mutmut gave no results; see {work / 'mutmut.log'}")
    survivors = sorted(k for k, v in found.items() if v not in KILLED)
    shown = diffs(work, survivors)
    text = "".join(f"# {name}: {found[name]}\n{shown.get(name, '')}\n" for name in survivors)
    return len(found), len(found) - len(survivors), survivors, text, took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help="run only modules whose path contains this")
    args = parser.parse_args()
    jobs = int(os.environ.get("MUTANTS_JOBS", "2"))
    chosen = [t for t in TARGETS if not args.modules or any(m in t.module for m in args.modules)]
    BUILD.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    rows, reports = [], []
    all_total = all_killed = 0
    for target in chosen:
        total, killed, survivors, text, took = run(target, jobs)
        all_total, all_killed = all_total + total, all_killed + killed
        row = (f"| {target.module} | {total} | {killed} | {100 * killed / total:.1f} % "
               f"| {len(survivors)} | {took:.0f} s |")
        print(row, flush=True)
        rows.append(row)
        reports.append(f"## {target.module}: {len(survivors)} of {total} survived\n\n{text}\n")
    rate = 100 * all_killed / max(all_total, 1)
    rows.append(f"| all | {all_total} | {all_killed} | {rate:.1f} % | {all_total - all_killed} "
                f"| {time.monotonic() - started:.0f} s |")
    table = ["| module | mutants | killed | kill rate | survivors | time |",
             "| --- | ---: | ---: | ---: | ---: | ---: |", *rows]
    (BUILD / "summary.txt").write_text("\n".join(table) + "\n")
    (BUILD / "survivors.txt").write_text("\n".join(reports))
    print("\n".join(table[-1:]))
    print(f"survivors: {BUILD / 'survivors.txt'}  summary: {BUILD / 'summary.txt'}")


if __name__ == "__main__":
    main()
