"""LangGraph's own test suite, run plain and with its nodes on Lattice, and compared.

    python tests/langgraph_conformance/run.py [--workers N] [--only plain|lattice] [-k EXPR]

Downloads the sdist of the installed langgraph version from PyPI (``pip download``; its ``tests/`` are
not in the wheel), runs the chosen test files with the memory and sqlite checkpointers (``NO_DOCKER``:
no postgres, no redis) once plain and once with ``lattice_nodes`` loaded against one real head, and
exits non-zero when a test that passed plain fails on Lattice without being listed in
``exclusions.py`` (each entry says why remote execution cannot honour it). Reports go to ``--out``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SUITE = ("test_pregel.py", "test_large_cases.py", "test_state.py", "test_retry.py", "test_interruption.py",
         "test_runtime.py", "test_pydantic.py", "test_messages_state.py", "test_pregel_async.py")


@dataclass(frozen=True)
class Outcomes:
    passed: frozenset[str]
    failed: frozenset[str]
    skipped: int

    @classmethod
    def read(cls, junit: Path) -> Outcomes:
        passed, failed, skipped = set(), set(), 0
        for case in ET.parse(junit).iter("testcase"):
            name = f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}"
            if case.find("skipped") is not None:
                skipped += 1
            elif case.find("failure") is not None or case.find("error") is not None:
                failed.add(name)
            else:
                passed.add(name)
        return cls(frozenset(passed), frozenset(failed), skipped)


def fetch_suite(work: Path) -> Path:
    """The sdist's tests (and its pyproject, for the rootdir) of the installed langgraph, under ``work``."""
    pinned = version("langgraph")
    root = work / f"langgraph-{pinned}"
    if (root / "tests").is_dir():
        return root
    work.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-binary", ":all:", "--no-deps",
                    f"langgraph=={pinned}", "-d", str(work)], check=True)
    with tarfile.open(work / f"langgraph-{pinned}.tar.gz") as archive:
        members = [m for m in archive.getmembers()
                   if m.name.startswith(f"langgraph-{pinned}/tests/") or m.name == f"langgraph-{pinned}/pyproject.toml"]
        archive.extractall(work, members=members, filter="data")
    return root


def run_pytest(root: Path, junit: Path, workers: int, extra: list[str], env: dict[str, str]) -> None:
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", "--timeout", "60",
            f"--junitxml={junit}", *[f"tests/{name}" for name in SUITE], *extra]
    if workers > 1:
        args += ["-n", str(workers)]
    subprocess.run(args, cwd=root, env={**os.environ, "NO_DOCKER": "true", **env}, check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "lattice-lg-conformance")
    parser.add_argument("--out", type=Path, default=None, help="where the junit reports go (default: --work)")
    parser.add_argument("--workers", type=int, default=2, help="pytest-xdist workers per run")
    parser.add_argument("--only", choices=("plain", "lattice"), default=None)
    parser.add_argument("-k", dest="select", default=None, help="pytest -k expression (a partial run)")
    opts = parser.parse_args()
    root = fetch_suite(opts.work)
    out = opts.out or opts.work
    out.mkdir(parents=True, exist_ok=True)
    extra = ["-k", opts.select] if opts.select else []
    plain_xml, lattice_xml = out / "plain.xml", out / "lattice.xml"
    if opts.only != "lattice":
        run_pytest(root, plain_xml, opts.workers, extra, {})
    if opts.only != "plain":
        sys.path.insert(0, str(REPO / "tests"))
        from headproc import HeadProcess

        head = HeadProcess(Path(tempfile.mkdtemp(prefix="lattice-conformance-head-"))).start()
        try:
            pythonpath = os.pathsep.join([str(HERE), str(REPO), os.environ.get("PYTHONPATH", "")])
            run_pytest(root, lattice_xml, opts.workers, [*extra, "-p", "lattice_nodes"],
                       {"LATTICE_CONFORMANCE_URL": head.url, "LATTICE_CONFORMANCE_TOKEN": head.token,
                        "PYTHONPATH": pythonpath})
        finally:
            head.stop()
    if opts.only is not None:
        return 0
    return compare(Outcomes.read(plain_xml), Outcomes.read(lattice_xml))


def compare(plain: Outcomes, remote: Outcomes) -> int:
    sys.path.insert(0, str(HERE))
    from exclusions import EXCLUDED

    broken = sorted(name for name in plain.passed & remote.failed)
    regressions = [name for name in broken if not _excluded(name, EXCLUDED)]
    print(f"plain:   {len(plain.passed)} passed, {len(plain.failed)} failed, {plain.skipped} skipped")
    print(f"lattice: {len(remote.passed)} passed, {len(remote.failed)} failed, {remote.skipped} skipped")
    print(f"passed plain, failed on Lattice: {len(broken)}; excluded: {len(broken) - len(regressions)}; "
          f"regressions: {len(regressions)}")
    for name in regressions:
        print(f"  REGRESSION {name}")
    return 1 if regressions else 0


def _excluded(name: str, excluded: dict[str, str]) -> bool:
    """An entry names a test (``file::test``) with or without its parameters (``[...]``)."""
    return name in excluded or name.split("[", 1)[0] in excluded


if __name__ == "__main__":
    raise SystemExit(main())
