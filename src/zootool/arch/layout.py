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
from typing import ClassVar, Literal

from .base import TensorSpec

GROWING = -1  # the size of a state axis that grows with the context
Activation = Literal["silu", "gelu_tanh"]
QkNorm = Literal["none", "head", "whole"]
# The engine contract's state names (apple/coreai-models: keyCache / valueCache grow with the
# context; any other state is fixed). LFM2's short conv keeps its historical ``convState``;
# the recurrent hybrids use the names the Qwen3.5 engines read.
KEY_CACHE, VALUE_CACHE, CONV_STATE = "keyCache", "valueCache", "convState"
CONV_STATES, RECURRENT_STATES = "convStates", "recurrentStates"


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

    slot: ClassVar[str] = "self_attn"  # the layer's attribute (canonical tensor names)

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
    # Qwen3-Next / Qwen3.5: q_proj also yields, per head, a gate; the output is scaled by its sigmoid.
    output_gate: bool = False

    def tensors(self, prefix: str) -> list[TensorSpec]:
        h, q, kv = self.hidden, self.heads * self.head_dim, self.kv_heads * self.head_dim
        queries = 2 * q if self.output_gate else q
        shapes = {"q_proj": (queries, h), "k_proj": (kv, h), "v_proj": (kv, h), "o_proj": (h, q)}
        specs = [TensorSpec(f"{prefix}.{name}.weight", "attention", shape) for name, shape in shapes.items()]
        biased = ("q_proj", "k_proj", "v_proj") if self.qkv_bias else ()
        specs += [TensorSpec(f"{prefix}.{name}.bias", "attention", shapes[name][:1]) for name in biased]
        if self.o_bias:
            specs.append(TensorSpec(f"{prefix}.o_proj.bias", "attention", (h,)))
        if self.qk_norm != "none":
            widths = (self.head_dim, self.head_dim) if self.qk_norm == "head" else (q, kv)
            specs += [TensorSpec(f"{prefix}.{n}.weight", "norm", (w,)) for n, w in zip(("q_norm", "k_norm"), widths)]
        return specs

    def state_rows(self) -> dict[str, tuple[int, ...]]:
        """Per layer, each state's shape; ``GROWING`` marks the axis that follows the context."""
        return {KEY_CACHE: (1, self.kv_heads, GROWING, self.head_dim),
                VALUE_CACHE: (1, self.kv_heads, GROWING, self.head_dim)}


@dataclass(frozen=True)
class ShortConv:
    """LFM2's gated depthwise causal conv; its state is the last ``kernel - 1`` gated inputs."""

    slot: ClassVar[str] = "conv"

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

    def state_rows(self) -> dict[str, tuple[int, ...]]:
        return {CONV_STATE: (1, self.hidden, self.kernel - 1)}


@dataclass(frozen=True)
class GatedDeltaNet:
    """Gated delta-rule linear attention (Qwen3-Next, Qwen3.5): a causal conv, then a recurrent state.

    q/k/v come out of a depthwise causal conv (window: the last ``kernel - 1`` inputs, the
    ``convStates`` state) over one projection; each value head keeps a ``[key_dim, value_dim]``
    state (``recurrentStates``) that decays by ``exp(g)`` and is corrected by the delta rule;
    the output is RMS-normed per head and gated by ``silu(z)``. ``fused`` is Qwen3-Next's
    checkpoint layout: q/k/v/z and b/a interleaved per key head in two projections.
    """

    slot: ClassVar[str] = "linear_attn"

    hidden: int
    key_heads: int
    value_heads: int
    key_dim: int
    value_dim: int
    kernel: int
    norm: Norm  # the per-head output norm (plain ``w``)
    fused: bool = False

    @property
    def conv_channels(self) -> int:
        return 2 * self.key_heads * self.key_dim + self.value_heads * self.value_dim

    def tensors(self, prefix: str) -> list[TensorSpec]:
        h, keys, values, heads = self.hidden, self.key_heads * self.key_dim, self.value_heads * self.value_dim, self.value_heads
        if self.fused:
            shapes = {"in_proj_qkvz": (2 * keys + 2 * values, h), "in_proj_ba": (2 * heads, h)}
        else:
            shapes = {"in_proj_qkv": (self.conv_channels, h), "in_proj_z": (values, h), "in_proj_b": (heads, h),
                      "in_proj_a": (heads, h)}
        specs = [TensorSpec(f"{prefix}.{name}.weight", "linear", shape) for name, shape in shapes.items()]
        return specs + [
            TensorSpec(f"{prefix}.conv1d.weight", "conv", (self.conv_channels, 1, self.kernel)),
            TensorSpec(f"{prefix}.dt_bias", "norm", (heads,)),
            TensorSpec(f"{prefix}.A_log", "norm", (heads,)),
            TensorSpec(f"{prefix}.norm.weight", "norm", (self.value_dim,)),
            TensorSpec(f"{prefix}.out_proj.weight", "linear", (h, values)),
        ]

    def state_rows(self) -> dict[str, tuple[int, ...]]:
        return {CONV_STATES: (1, self.conv_channels, self.kernel - 1),
                RECURRENT_STATES: (1, self.value_heads, self.key_dim, self.value_dim)}


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


Mixer = Attention | ShortConv | GatedDeltaNet
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
        ffn = "mlp" if isinstance(self.ffn, Mlp) else "moe"
        specs = self.mixer.tensors(f"{prefix}.{self.mixer.slot}") + self.ffn.tensors(f"{prefix}.{ffn}")
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
    def fixed_state_mixers(self) -> list[Mixer]:
        """The mixers that keep a fixed-size state (a conv window, a recurrent state), in layer order."""
        return [layer.mixer for layer in self.layers if not isinstance(layer.mixer, Attention)]

    def state_rows(self) -> dict[str, list[tuple[int, ...]]]:
        """Each state's per-layer shapes, in layer order (the graph stacks them on a new first axis)."""
        rows: dict[str, list[tuple[int, ...]]] = {}
        for layer in self.layers:
            for name, shape in layer.mixer.state_rows().items():
                rows.setdefault(name, []).append(shape)
        return rows

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
