"""Property-based requests from the head's own OpenAPI document (schemathesis 4): no request is a 5xx.

schemathesis generates requests from ``/openapi.json`` (boundary values, fuzzing, chains of calls
through the links it infers) and checks each answer with ``not_a_server_error``. It found the 500s
of huge integers (``?offset=10000000000000000001``, ``?after=...``) that the bounds now refuse with a
422. The seed is fixed and the examples per operation are capped, so the run is reproducible and
takes about a minute here.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from tests.headproc import HeadProcess

pytestmark = pytest.mark.timeout(600)

SEED = "1"
EXAMPLES_PER_OPERATION = "20"


@pytest.fixture(scope="module")
def fuzzed_head(tmp_path_factory: pytest.TempPathFactory):
    """A head of its own: the fuzzer registers hundreds of odd workflows and runs, which no other test
    should inherit (nor a crash, if it found one, be blamed on the next test)."""
    proc = HeadProcess(tmp_path_factory.mktemp("fuzzed-head")).start()
    yield proc
    proc.stop()


def test_no_generated_request_is_a_server_error(fuzzed_head: HeadProcess, tmp_path):
    head = fuzzed_head
    if importlib.util.find_spec("schemathesis") is None:
        pytest.fail("schemathesis is not installed; it is in the dev extras: pip install -e '.[dev]'")
    result = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "run", f"{head.url}/openapi.json",
         "--checks", "not_a_server_error", "--seed", SEED, "--max-examples", EXAMPLES_PER_OPERATION,
         "--header", f"Authorization: Bearer {head.token}", "--no-color"],
        capture_output=True, text=True, timeout=540, cwd=tmp_path)  # its example cache stays out of the tree
    report = result.stdout + result.stderr
    alive = head.proc is not None and head.proc.poll() is None
    assert result.returncode == 0 and alive, report[-6000:] + "\nhead log:\n" + head.log_path.read_text()[-4000:]
    summary = report.split("SUMMARY")[-1]
    assert "generated" in summary and " failed" not in summary, report[-6000:]
