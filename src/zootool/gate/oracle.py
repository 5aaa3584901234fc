"""The gate's fp32 oracle, streamed: transformers' own model with one decoder layer in memory at a time.

Loading a whole checkpoint in fp32 takes 34 GB for LFM2.5-8B-A1B, more than the machines that
run the gate have. Teacher forcing knows every token up front, so the sequence can go through
the model layer by layer instead. The model is built on the meta device; transformers' own
forward then runs over the whole sequence (its masks, rotary embedding, conv and MoE code, no
cache), and each decoder layer's weights are read from the checkpoint and upcast to fp32 just
before that layer runs and dropped right after it. Only the given tokens' embedding rows are
read, and the (tied) head is read in row blocks. Peak memory is one layer plus activations, and
the transients of transformers' weight conversion while a layer loads: measured, 2.7x one fp32
layer for an LFM2.5-8B-A1B-sized MoE layer (about 4 GiB peak, against 34 GB for the whole model).

Checkpoint names and layouts go through transformers' own loading conversion (e.g. LFM2-MoE's
per-expert ``experts.N.w1/w2/w3`` stacked into ``gate_up_proj`` / ``down_proj``), and none of
the zoo's export modules is used: the oracle stays an independent reference.

Imported only by the gate; torch and transformers are imported at module level here for that reason.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..arch.registry import MODEL_TYPES, known_model_types
from ..arch.safetensors_checkpoint import SafetensorsCheckpoint
from ..build.parallel import torch_threads
from ..build.quiet import no_progress_bars
from ..errors import ConfigError, FetchError, NotImplementedFeatureError
from .layer_streaming import loaded_while_running
from .margin import OracleRow

THREADS = 2  # the gate's machines have 2 cores; more threads only contend
RUNTIME = "transformers fp32 CPU, one decoder layer at a time (zootool.gate.oracle)"  # for the transcript
# Head rows read and multiplied at once: 8192 x 2048 in fp32 is 64 MiB for LFM2.5-8B-A1B.
HEAD_BLOCK_ROWS = 8192
_REFETCH = "delete the checkpoint directory and fetch it again"


def streaming_logits(checkpoint: Path, token_ids: Sequence[int], *, threads: int = THREADS) -> np.ndarray:
    """fp32 logits ``[len(token_ids), vocab]`` of the checkpoint's model over ``token_ids`` (no cache).

    The same numbers as transformers' ``AutoModelForCausalLM.from_pretrained(checkpoint,
    dtype=torch.float32)(ids).logits[0]``, with at most one decoder layer's weights in memory.
    bf16 and fp32 checkpoints alike are computed in fp32.
    """
    with torch_threads(threads), torch.no_grad():
        model = _StreamedModel(Path(checkpoint))
        hidden = model.final_hidden(token_ids)
        blocks = [logits for _, logits in model.head_blocks(hidden)]
    return torch.cat(blocks, dim=1).numpy()


def streaming_top_k(checkpoint: Path, token_ids: Sequence[int], k: int, *, threads: int = THREADS) -> list[OracleRow]:
    """The oracle's ``k`` best tokens and their fp32 logits at each position, best first.

    As :func:`streaming_logits` followed by ``OracleRow.from_logits(row, k)`` per row (equal
    logits ordered by token id), but never holding more than one head block of logits.
    """
    if k < 1:
        raise ConfigError(f"top-k of the oracle must be at least 1, not {k}", "keep at least one token per position")
    with torch_threads(threads), torch.no_grad():
        model = _StreamedModel(Path(checkpoint))
        hidden = model.final_hidden(token_ids)
        values, tokens = _running_top_k(model.head_blocks(hidden), k)
    return [_oracle_row(v, t) for v, t in zip(values.numpy(), tokens.numpy(), strict=True)]


@dataclass(frozen=True)
class _CheckpointKeys:
    """Which checkpoint tensors feed which part of the model."""

    layers: list[list[str]]  # per decoder layer, every checkpoint key that loads into it
    layer_prefixes: list[str]  # each layer's qualified name in the model, with a trailing dot
    resident: list[str]  # the small weights outside the layers (the final norm), loaded once
    resident_targets: list[str]  # their names in the model
    embedding: str
    head: str  # the embedding itself when the head is tied


class _StreamedModel:
    """A meta-device transformers causal LM whose weights come from the checkpoint on demand."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.model = _skeleton(_load_config(directory))
        self.base = self.model.base_model
        self.layers = _decoder_layers(self.base)
        self.conversions = _conversions(self.model)
        with SafetensorsCheckpoint(directory) as checkpoint:
            self.keys = _group_keys(self.model, self.layers, checkpoint.names(), self.conversions)
        self.vocab_size = int(self.model.get_input_embeddings().num_embeddings)

    def final_hidden(self, token_ids: Sequence[int]) -> torch.Tensor:
        """The final-norm output ``[len(token_ids), hidden]``, transformers' forward run layer by layer."""
        ids = _checked_ids(token_ids, self.vocab_size)
        self.load_resident()
        embeds = self.embedding_rows(ids)
        with _one_layer_at_a_time(self):
            output = self.base(inputs_embeds=embeds[None], use_cache=False)
        return output.last_hidden_state[0]

    def embedding_rows(self, ids: list[int]) -> torch.Tensor:
        """The input embeddings of ``ids``: the model's own embedding module over just the rows they use
        (it may scale them, as Gemma's does)."""
        unique = sorted(set(ids))
        with SafetensorsCheckpoint(self.directory) as checkpoint:
            table = checkpoint.get_slice(self.keys.embedding)
            rows = torch.cat([_read_rows(table, self.keys.embedding, i, i + 1) for i in unique])
        position = {token: row for row, token in enumerate(unique)}
        return _embedded(self.model.get_input_embeddings(), rows, [position[i] for i in ids])

    def head_blocks(self, hidden: torch.Tensor) -> Iterator[tuple[int, torch.Tensor]]:
        """``(first vocab id, logits [positions, rows])`` for each block of head rows, in vocab order."""
        with SafetensorsCheckpoint(self.directory) as checkpoint:
            head = checkpoint.get_slice(self.keys.head)
            for start in range(0, self.vocab_size, HEAD_BLOCK_ROWS):
                stop = min(start + HEAD_BLOCK_ROWS, self.vocab_size)
                yield start, self._capped(nn.functional.linear(hidden, _read_rows(head, self.keys.head, start, stop)))

    def _capped(self, logits: torch.Tensor) -> torch.Tensor:
        """transformers' final logit soft-cap, where the config has one (Gemma's ``cap * tanh(x / cap)``)."""
        cap = getattr(self.model.config, "final_logit_softcapping", None)
        return logits if cap is None else torch.tanh(logits / cap) * cap

    def load_layer(self, index: int) -> None:
        info = self._load(self.keys.layers[index])
        prefix = self.keys.layer_prefixes[index]
        weights = self.layers[index].state_dict(keep_vars=True)
        _check_materialised({prefix + name: tensor for name, tensor in weights.items()}, info, self.directory)

    def load_resident(self) -> None:
        info = self._load(self.keys.resident)
        weights = self.model.state_dict(keep_vars=True)
        _check_materialised({name: weights[name] for name in self.keys.resident_targets}, info, self.directory)

    def _load(self, keys: list[str]) -> Any:
        """Read ``keys`` into the model in fp32; the file is closed after, so its mapped pages go too."""
        with SafetensorsCheckpoint(self.directory) as checkpoint:
            sources = {key: checkpoint.get_slice(key) for key in keys}
            return _convert_and_load(self.model, sources, self.conversions)


def _load_config(directory: Path) -> Any:
    """transformers' config for the checkpoint, after checking that its family is one the zoo knows."""
    from transformers import AutoConfig

    path = directory / "config.json"
    try:
        model_type = json.loads(path.read_text()).get("model_type")
    except (OSError, ValueError, AttributeError) as exc:
        raise FetchError(f"{path}: cannot read the checkpoint's config ({exc})", _REFETCH) from exc
    if model_type not in MODEL_TYPES:
        raise NotImplementedFeatureError(
            f"{path}: the fp32 oracle does not know model_type {model_type!r}",
            f"it runs the zoo's families: {', '.join(known_model_types())}",
        )
    return AutoConfig.from_pretrained(directory)


def _skeleton(config: Any) -> nn.Module:
    """The fp32 causal LM (the class the family names) with every weight on the meta device and its
    computed buffers real."""
    import transformers

    causal_lm = getattr(transformers, MODEL_TYPES[config.model_type].causal_lm[config.model_type])
    with torch.device("meta"):
        model = causal_lm._from_config(config, dtype=torch.float32)
    _rebuild_computed_buffers(model)
    return model.eval()


def _rebuild_computed_buffers(model: nn.Module) -> None:
    """Non-persistent buffers (RoPE inverse frequencies, Gemma's embedding scale) come from the config,
    not the checkpoint: modules built from the config are built again on the CPU with the model's own
    classes; the others' buffers are filled by the model's own weight initialisation."""
    owners = [(name, module) for name, module in model.named_modules() if module._non_persistent_buffers_set]
    for name, module in owners:
        if hasattr(module, "config"):
            with torch.device("cpu"):
                model.set_submodule(name, type(module)(module.config))
            continue
        for buffer in module._non_persistent_buffers_set:
            module._buffers[buffer] = torch.empty_like(module._buffers[buffer], device="cpu")
        model._init_weights(module)
        if any(module._buffers[b].is_meta for b in module._non_persistent_buffers_set):
            raise NotImplementedFeatureError(
                f"the fp32 oracle cannot rebuild {type(module).__name__} ({name}) off the meta device",
                "it knows modules built from the model config and buffers the model's initialisation sets",
            )


def _embedded(embedding: nn.Module, rows: torch.Tensor, index: list[int]) -> torch.Tensor:
    """``embedding``'s own forward over a table of only ``rows``, looked up at ``index``."""
    original = embedding.weight, embedding.num_embeddings, embedding.padding_idx
    try:
        embedding.weight = nn.Parameter(rows, requires_grad=False)
        embedding.num_embeddings, embedding.padding_idx = rows.shape[0], None
        return embedding(torch.tensor(index))
    finally:
        embedding.weight, embedding.num_embeddings, embedding.padding_idx = original


def _decoder_layers(base: nn.Module) -> nn.ModuleList:
    layers = getattr(base, "layers", None)
    if not isinstance(layers, nn.ModuleList):
        raise NotImplementedFeatureError(
            f"the fp32 oracle finds no decoder layers in {type(base).__name__}",
            "it streams models whose base model keeps them in `layers`",
        )
    return layers


def _conversions(model: nn.Module) -> list[Any]:
    """transformers' own checkpoint-to-model renamings and conversions for this model."""
    from transformers.conversion_mapping import get_model_conversion_mapping

    return get_model_conversion_mapping(model)


def _group_keys(model: nn.Module, layers: nn.ModuleList, names: list[str], conversions: list[Any]) -> _CheckpointKeys:
    """Checkpoint keys by the part of the model their (converted) names load into."""
    targets = _target_names(model, names, conversions)
    qualified = {id(module): name for name, module in model.named_modules()}
    prefixes = [qualified[id(layer)] + "." for layer in layers]
    embedding = qualified[id(model.get_input_embeddings())] + ".weight"
    output = qualified[id(model.get_output_embeddings())] + ".weight"
    head = model.all_tied_weights_keys.get(output, output)
    resident = [
        name for name in model.state_dict()
        if name not in {embedding, output} and not any(name.startswith(prefix) for prefix in prefixes)
    ]  # fmt: skip
    return _CheckpointKeys(
        layers=[[key for key, target in targets.items() if target.startswith(prefix)] for prefix in prefixes],
        layer_prefixes=prefixes,
        resident=[key for key, target in targets.items() if target in set(resident)],
        resident_targets=resident,
        embedding=_source_of(embedding, targets),
        head=_source_of(head, targets),
    )


def _target_names(model: nn.Module, names: list[str], conversions: list[Any]) -> dict[str, str]:
    from transformers.core_model_loading import WeightConverter, WeightRenaming, rename_source_key

    renamings = [c for c in conversions if isinstance(c, WeightRenaming)]
    converters = [c for c in conversions if isinstance(c, WeightConverter)]
    expected = model.state_dict()
    prefix = model.base_model_prefix
    return {name: rename_source_key(name, renamings, converters, prefix, expected)[0] for name in names}


def _source_of(target: str, targets: dict[str, str]) -> str:
    sources = [key for key, name in targets.items() if name == target]
    if len(sources) != 1:
        raise FetchError(
            f"checkpoint has {'no' if not sources else 'more than one'} tensor for {target}",
            f"the checkpoint is incomplete or not of this architecture; {_REFETCH}",
        )
    return sources[0]


def _convert_and_load(model: nn.Module, sources: dict[str, Any], conversions: list[Any]) -> Any:
    """transformers' own loading step (renaming, expert stacking, fp32 cast) on these checkpoint tensors only."""
    from transformers.core_model_loading import convert_and_load_state_dict_in_model
    from transformers.modeling_utils import LoadStateDictConfig

    config = LoadStateDictConfig(dtype=torch.float32, weight_mapping=conversions)
    with no_progress_bars():
        info, _ = convert_and_load_state_dict_in_model(model, sources, config)
    return info


def _check_materialised(weights: dict[str, torch.Tensor], info: Any, directory: Path) -> None:
    """A weight still on meta after loading was missing, misshapen or failed to convert: say which."""
    left = [name for name, tensor in weights.items() if tensor.is_meta]
    if not left:
        return
    shapes = {name: (tuple(got), tuple(want)) for name, got, want in info.mismatched_keys}
    errors = {name: message.strip().splitlines()[-1] for name, message in info.conversion_errors.items()}
    reasons = [_why_not_loaded(name, shapes, errors) for name in sorted(left)]
    raise FetchError(
        f"{directory}: {'; '.join(reasons[:3])}" + (f" (and {len(reasons) - 3} more)" if len(reasons) > 3 else ""),
        f"the checkpoint does not match its config.json or is incomplete; {_REFETCH}",
    )


def _why_not_loaded(name: str, shapes: dict[str, tuple], errors: dict[str, str]) -> str:
    if name in shapes:
        got, want = shapes[name]
        return f"the tensor for {name} has shape {got}, the config implies {want}"
    if name in errors:
        return f"cannot convert the tensor(s) for {name}: {errors[name]}"
    return f"checkpoint has no tensor for {name}"


def _one_layer_at_a_time(model: _StreamedModel) -> Any:
    """Each decoder layer is loaded just before it runs and put back on the meta device right after."""
    index_of = {id(layer): index for index, layer in enumerate(model.layers)}
    return loaded_while_running(model.layers, lambda layer: model.load_layer(index_of[id(layer)]))


def _read_rows(table: Any, name: str, start: int, stop: int) -> torch.Tensor:
    try:
        rows = table[start:stop]
    except Exception as exc:  # safetensors raises its own untyped errors
        raise FetchError(f"cannot read rows {start}:{stop} of tensor {name!r}: {exc}", _REFETCH) from exc
    return rows.to(torch.float32)


def _checked_ids(token_ids: Sequence[int], vocab_size: int) -> list[int]:
    ids = [int(token) for token in token_ids]
    if not ids:
        raise ConfigError("the fp32 oracle needs at least one token", "pass the prompt and forced tokens")
    bad = [token for token in ids if not 0 <= token < vocab_size]
    if bad:
        raise ConfigError(
            f"token ids {bad[:5]} are outside the model's vocabulary of {vocab_size}",
            "tokenize with the checkpoint's own tokenizer",
        )
    return ids


def _running_top_k(blocks: Iterator[tuple[int, torch.Tensor]], k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The best ``k`` (logit, token) per position over all head blocks, holding one block at a time."""
    best_values = best_tokens = None
    for start, logits in blocks:
        values, tokens = torch.topk(logits, min(k, logits.shape[1]), dim=1)
        tokens = tokens + start
        if best_values is not None:
            values, tokens = torch.cat([best_values, values], 1), torch.cat([best_tokens, tokens], 1)
            values, order = torch.topk(values, min(k, values.shape[1]), dim=1)
            tokens = torch.gather(tokens, 1, order)
        best_values, best_tokens = values, tokens
    return best_values, best_tokens


def _oracle_row(values: np.ndarray, tokens: np.ndarray) -> OracleRow:
    order = np.lexsort((tokens, -values.astype(np.float64)))  # best first; equal logits by token id
    return OracleRow(tokens=[int(t) for t in tokens[order]], logits=[float(v) for v in values[order]])
