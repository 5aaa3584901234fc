"""Routed experts (``layout.Moe``): a router, stacked ``[E, N, K]`` expert weights, a pluggable matmul.

The stacked layout is the expert kernels' contract (``zoo/kernels.toml`` ``needs =
"stacked-experts"``): the stock ``GatherMM`` composite, the ``gather_qmm`` Metal kernel and
the gate's eager twin all take ``matmul(hidden, indices, weight)`` over it, whatever family
the experts come from.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..layout import Moe
from .mlp import GatedMlp, activation

# LFM2-MoE renormalises its sigmoid weights with this in the denominator; softmax routers don't.
SIGMOID_RENORM_EPS = 1e-6


class _IndexSelectGatherMM(nn.Module):
    """Same contract as coreai_torch's ``GatherMM`` (lhs gather only), for torch-only installs."""

    def forward(self, lhs: Tensor, rhs: Tensor, lhs_indices: Tensor | None = None) -> Tensor:
        if lhs_indices is not None:
            picked = torch.index_select(lhs, 0, lhs_indices.flatten().to(torch.int32))
            lhs = picked.view(*lhs_indices.shape, *lhs.shape[1:])
        return torch.matmul(lhs, rhs)


def _default_gather_mm() -> nn.Module:
    try:
        from coreai_torch.composite_ops import GatherMM
    except ImportError:
        return _IndexSelectGatherMM()
    return GatherMM()


class GatherExpertMatmul(nn.Module):
    """The pluggable expert matmul: ``out[t, j] = weight[indices[t, j]] @ hidden[t(, j)]``.

    ``hidden`` is ``[T, in]`` (shared by the k routed experts) or ``[T, k, in]``;
    ``indices`` is ``[T, k]``; ``weight`` is the stacked ``[E, out, in]`` expert
    tensor. Returns ``[T, k, out]``. Expressed as a lhs-gathered ``GatherMM`` so
    the converter can keep it as its composite op. ``replace_expert_matmul`` swaps
    in any module of this signature (custom kernel, quantized GatherMM).
    """

    def __init__(self) -> None:
        super().__init__()
        self.gather_mm = _default_gather_mm()

    def forward(self, hidden: Tensor, indices: Tensor, weight: Tensor) -> Tensor:
        if hidden.dim() == 2:
            hidden = hidden.unsqueeze(1).expand(-1, indices.shape[1], -1)
        return self.gather_mm(weight, hidden.unsqueeze(-1), lhs_indices=indices).squeeze(-1)


class StackedExperts(nn.Module):
    """Expert weights stacked as transformers 5 holds them, plus the matmul that reads them."""

    def __init__(self, spec: Moe) -> None:
        super().__init__()
        e, h, i = spec.experts, spec.hidden, spec.intermediate
        self.gate_up_proj = nn.Parameter(torch.zeros(e, 2 * i, h))
        self.down_proj = nn.Parameter(torch.zeros(e, h, i))
        self.matmul: nn.Module = GatherExpertMatmul()
        self.act = spec.activation

    def forward(self, x: Tensor, indices: Tensor, weights: Tensor) -> Tensor:
        gate, up = self.matmul(x, indices, self.gate_up_proj).chunk(2, dim=-1)
        down = self.matmul(activation(self.act, gate) * up, indices, self.down_proj)
        return (down * weights.unsqueeze(-1)).sum(1)


class SparseMoe(nn.Module):
    """Top-k routing by softmax or sigmoid scores; an expert bias steers the choice only."""

    def __init__(self, spec: Moe) -> None:
        super().__init__()
        self.spec = spec
        self.router = nn.Linear(spec.hidden, spec.experts, bias=False)
        self.expert_bias = nn.Buffer(torch.zeros(spec.experts)) if spec.expert_bias else None
        self.experts = StackedExperts(spec)
        self.shared = GatedMlp(spec.shared) if spec.shared is not None else None
        self.shared_gate = nn.Linear(spec.hidden, 1, bias=False) if spec.shared_gate else None
        if self.shared_gate is not None:
            self.shared_gate.zoo_group = "router"  # as layout.Moe lists it, whatever its name says

    def forward(self, x: Tensor) -> Tensor:
        flat = x.view(-1, x.shape[-1])
        indices, weights = self.route(flat)
        out = self.experts(flat, indices, weights).view_as(x)
        return out if self.shared is None else out + self._shared(x)

    def _shared(self, x: Tensor) -> Tensor:
        out = self.shared(x)
        return out if self.shared_gate is None else torch.sigmoid(self.shared_gate(x)) * out

    def route(self, flat: Tensor) -> tuple[Tensor, Tensor]:
        """``(indices [T, k], weights [T, k])`` of each token's experts."""
        spec, logits = self.spec, self.router(flat).to(torch.float32)
        if spec.routing == "softmax":
            return self._softmax_route(logits, flat.dtype)
        scores = torch.sigmoid(logits)
        # Ranked in fp32 so a reduced-precision build picks the experts the fp32 model picks.
        ranking = scores if self.expert_bias is None else scores + self.expert_bias
        _, indices = torch.topk(ranking, spec.top_k, dim=-1)
        weights = torch.gather(scores, 1, indices)
        if spec.renormalize:
            weights = weights / (weights.sum(-1, keepdim=True) + SIGMOID_RENORM_EPS)
        return indices, (weights * spec.scaling).to(flat.dtype)

    def _softmax_route(self, logits: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """Top-k of the router's softmax, chosen on the logits themselves (softmax keeps their order)."""
        spec = self.spec
        top, indices = torch.topk(logits, spec.top_k, dim=-1)
        if spec.renormalize:  # softmax over all, renormalised over the top k = softmax over the top k
            weights = torch.softmax(top, dim=-1)
        else:
            weights = torch.exp(top - torch.logsumexp(logits, dim=-1, keepdim=True))
        return indices, (weights * spec.scaling).to(dtype)


def replace_expert_matmul(graph: nn.Module, factory: object) -> int:
    """Give every expert stack its own ``factory()`` matmul; returns how many were replaced.

    The replacement is called as ``matmul(hidden, indices, weight)`` with the contract of
    :class:`GatherExpertMatmul` (e.g. a custom kernel or a quantized GatherMM).
    """
    experts = [m for m in graph.modules() if isinstance(m, StackedExperts)]
    for module in experts:
        module.matmul = factory()  # type: ignore[operator]
    return len(experts)
