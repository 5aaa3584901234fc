"""A decoder's shape as data: which block each layer uses, torch-free.

Every family describes its model as a :class:`DecoderLayout` built from the shared block
specs here. The planner lists the tensors (names, groups, shapes) from it without torch;
``arch.decoder`` builds the torch decode graph from the same layout, so the size estimate
and the exported graph cannot disagree about what is stored.

Tensor names are the graph's canonical names (``layers.3.self_attn.q_proj.weight``); a
family's :class:`~zootool.arch.weight_names.WeightNames` maps them to its checkpoint's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .base import TensorSpec

Activation = Literal["silu", "gelu_tanh"]
QkNorm = Literal["none", "head", "whole"]


@dataclass(frozen=True)
class Norm:
    """An RMS norm; Gemma stores ``w`` and scales by ``offset + w`` (offset 1)."""

    eps: float
    offset: float = 0.0


@dataclass(frozen=True)
class Rotary:
    """Which rotary table a layer reads (``table``) and how many channels of a head it turns."""

    table: str
    dims: int


@dataclass(frozen=True)
class Attention:
    """GQA over the shared KV caches, with the switches the families need."""

    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    rotary: Rotary | None  # None: no positional encoding in this layer (NoPE)
    qkv_bias: bool = False
    o_bias: bool = False
    qk_norm: QkNorm = "none"  # per head (Qwen3, LFM2, Gemma 3) or over the whole projection (OLMo 2)
    norm: Norm | None = None  # of q/k
    window: int | None = None  # sliding-window layers see the last `window` positions
    scale: float | None = None  # of the scores; None: head_dim ** -0.5

    def tensors(self, prefix: str) -> list[TensorSpec]:
        h, q, kv = self.hidden, self.heads * self.head_dim, self.kv_heads * self.head_dim
        shapes = {"q_proj": (q, h), "k_proj": (kv, h), "v_proj": (kv, h), "o_proj": (h, q)}
        specs = [TensorSpec(f"{prefix}.{name}.weight", "attention", shape) for name, shape in shapes.items()]
        biased = ("q_proj", "k_proj", "v_proj") if self.qkv_bias else ()
        specs += [TensorSpec(f"{prefix}.{name}.bias", "attention", shapes[name][:1]) for name in biased]
        if self.o_bias:
            specs.append(TensorSpec(f"{prefix}.o_proj.bias", "attention", (h,)))
        if self.qk_norm != "none":
            widths = (self.head_dim, self.head_dim) if self.qk_norm == "head" else (q, kv)
            specs += [TensorSpec(f"{prefix}.{n}.weight", "norm", (w,)) for n, w in zip(("q_norm", "k_norm"), widths)]
        return specs


@dataclass(frozen=True)
class ShortConv:
    """LFM2's gated depthwise causal conv; its state is the last ``kernel - 1`` gated inputs."""

    hidden: int
    kernel: int
    bias: bool = False

    def tensors(self, prefix: str) -> list[TensorSpec]:
        h = self.hidden
        specs = [
            TensorSpec(f"{prefix}.in_proj.weight", "linear", (3 * h, h)),
            TensorSpec(f"{prefix}.conv.weight", "conv", (h, 1, self.kernel)),
            TensorSpec(f"{prefix}.out_proj.weight", "linear", (h, h)),
        ]
        if self.bias:
            specs += [
                TensorSpec(f"{prefix}.in_proj.bias", "linear", (3 * h,)),
                TensorSpec(f"{prefix}.conv.bias", "conv", (h,)),
                TensorSpec(f"{prefix}.out_proj.bias", "linear", (h,)),
            ]
        return specs


@dataclass(frozen=True)
class Mlp:
    """Gated feed-forward: ``down(act(gate(x)) * up(x))`` (SwiGLU, GeGLU)."""

    hidden: int
    intermediate: int
    activation: Activation = "silu"
    bias: bool = False

    def tensors(self, prefix: str, group: str = "linear") -> list[TensorSpec]:
        h, i = self.hidden, self.intermediate
        shapes = {"gate_proj": (i, h), "up_proj": (i, h), "down_proj": (h, i)}
        specs = [TensorSpec(f"{prefix}.{name}.weight", group, shape) for name, shape in shapes.items()]
        if self.bias:
            specs += [TensorSpec(f"{prefix}.{name}.bias", group, shape[:1]) for name, shape in shapes.items()]
        return specs


@dataclass(frozen=True)
class Moe:
    """Routed experts, stacked ``[E, N, K]``, and their router.

    ``routing``: ``softmax`` over every expert (Qwen3-MoE, Mixtral) or an independent
    ``sigmoid`` per expert (LFM2-MoE). ``renormalize`` rescales the top-k weights to sum to
    one; ``expert_bias`` is added to the scores for the choice only, never to the weights.
    """

    hidden: int
    experts: int
    top_k: int
    intermediate: int
    routing: Literal["softmax", "sigmoid"]
    renormalize: bool
    expert_bias: bool = False
    scaling: float = 1.0
    activation: Activation = "silu"
    shared: Mlp | None = None  # an always-on expert beside the routed ones
    shared_gate: bool = False  # the shared expert's output scaled by sigmoid(w . x) (Qwen2-MoE)

    def tensors(self, prefix: str) -> list[TensorSpec]:
        e, h, i = self.experts, self.hidden, self.intermediate
        specs = [TensorSpec(f"{prefix}.router.weight", "router", (e, h))]
        if self.expert_bias:
            specs.append(TensorSpec(f"{prefix}.expert_bias", "buffer", (e,), parameter=False))
        specs += [
            TensorSpec(f"{prefix}.experts.gate_up_proj", "experts", (e, 2 * i, h)),
            TensorSpec(f"{prefix}.experts.down_proj", "experts", (e, h, i)),
        ]
        if self.shared is not None:
            specs += self.shared.tensors(f"{prefix}.shared")
        if self.shared_gate:
            specs.append(TensorSpec(f"{prefix}.shared_gate.weight", "router", (1, h)))
        return specs


Mixer = Attention | ShortConv
FeedForward = Mlp | Moe
NORM_SLOTS = ("mixer_norm", "mixer_post_norm", "ffn_norm", "ffn_post_norm")


@dataclass(frozen=True)
class Layer:
    """One decoder layer: a mixer and a feed-forward, each residual, with the norms it has.

    Pre-norm (Llama): ``mixer_norm`` and ``ffn_norm``. Gemma adds the two post-norms on the
    blocks' outputs; OLMo 2 has only the post-norms.
    """

    mixer: Mixer
    ffn: FeedForward
    norms: tuple[str, ...] = ("mixer_norm", "ffn_norm")

    def tensors(self, prefix: str) -> list[TensorSpec]:
        name = "self_attn" if isinstance(self.mixer, Attention) else "conv"
        ffn = "mlp" if isinstance(self.ffn, Mlp) else "moe"
        specs = self.mixer.tensors(f"{prefix}.{name}") + self.ffn.tensors(f"{prefix}.{ffn}")
        return specs + [TensorSpec(f"{prefix}.{slot}.weight", "norm", (self.mixer.hidden,)) for slot in self.norms]


@dataclass(frozen=True)
class DecoderLayout:
    """The whole decoder: embedding, layers, final norm, head."""

    vocab: int
    hidden: int
    layers: tuple[Layer, ...]
    norm: Norm
    tied: bool
    embed_scale: float | None = None  # Gemma multiplies the embedding by sqrt(hidden)
    logit_softcap: float | None = None  # logits = cap * tanh(logits / cap)

    def tensors(self) -> list[TensorSpec]:
        """Every stored tensor under its canonical graph name (a tied head is the embedding)."""
        specs = [TensorSpec("embed_tokens.weight", "embedding", (self.vocab, self.hidden))]
        for index, layer in enumerate(self.layers):
            specs += layer.tensors(f"layers.{index}")
        specs.append(TensorSpec("norm.weight", "norm", (self.hidden,)))
        if not self.tied:
            specs.append(TensorSpec("lm_head.weight", "lm-head", (self.vocab, self.hidden)))
        return specs

    @property
    def attention_layers(self) -> list[Attention]:
        return [layer.mixer for layer in self.layers if isinstance(layer.mixer, Attention)]

    @property
    def conv_layers(self) -> list[ShortConv]:
        return [layer.mixer for layer in self.layers if isinstance(layer.mixer, ShortConv)]

    @property
    def routed_experts(self) -> bool:
        """Whether any layer has stacked routed experts (what the expert kernels read)."""
        return any(isinstance(layer.ffn, Moe) for layer in self.layers)

    def active_params(self) -> int:
        """Weights one token multiplies by: a routed stack counts ``top_k / experts`` of itself."""
        share = {f"layers.{i}.moe.experts.": l.ffn.top_k / l.ffn.experts
                 for i, l in enumerate(self.layers) if isinstance(l.ffn, Moe)}
        total = 0
        for spec in self.tensors():
            if spec.parameter and spec.group not in ("norm", "buffer"):
                prefix = spec.name.rsplit(".", 1)[0] + "."
                total += round(spec.numel * share.get(prefix, 1.0))
        return total
