"""fp32 linear layers on oneDNN's GEMM on CPU, swapped in from outside a model: the trainer's model,
the eval scorers and the semantic-dedup embedder.

Why: torch sends a CPU fp32 `mm` to MKL's sgemm, which on AMD CPUs takes its AVX2 path (about
90 GFLOP/s a core on a Zen 5 EPYC), while oneDNN, also inside every x86 torch build, runs the same
IEEE fp32 GEMM with AVX-512 at about 200 GFLOP/s. The three products of a linear layer (forward,
input gradient, weight gradient) all go through oneDNN; the arithmetic stays fp32, only the kernel
changes. A model keeps its `nn.Linear` parameters and names, so checkpoints and export are unchanged.
"""

from __future__ import annotations

import platform
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

CpuLinear = Literal["auto", "onednn", "aten"]


@torch.library.custom_op("dataengine::gemm_nt", mutates_args=())
def _gemm_nt(a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """a @ b.T (+ bias) for 2-D fp32 tensors, strided views allowed. A custom op so that Inductor
    calls it as it is (its own oneDNN lowering wants weights frozen as constants)."""
    return torch.ops.mkldnn._linear_pointwise(a, b, bias, "none", [], "")


@_gemm_nt.register_fake
def _(a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    return a.new_empty(a.shape[0], b.shape[0])


class _OneDNNLinearFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        y = _gemm_nt(x.reshape(-1, x.shape[-1]), weight, bias)
        return y.view(*x.shape[:-1], weight.shape[0])

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        x, weight = ctx.saved_tensors
        dy = grad_out.reshape(-1, grad_out.shape[-1])
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = _gemm_nt(dy, weight.t()).view(x.shape)
        if ctx.needs_input_grad[1]:
            grad_w = _gemm_nt(dy.t(), x.reshape(-1, x.shape[-1]).t())
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = dy.sum(0)
        return grad_x, grad_w, grad_b


def onednn_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """`F.linear` for fp32 CPU tensors, forward and backward on oneDNN."""
    return _OneDNNLinearFn.apply(x, weight, bias)


class OneDNNLinear(nn.Linear):
    """An `nn.Linear` whose products run on oneDNN; same parameters, same state dict."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # oneDNN takes no empty products; other dtypes and devices keep torch's kernels
        fp32_cpu = x.dtype == self.weight.dtype == torch.float32 and x.device.type == "cpu"
        if not fp32_cpu or x.numel() == 0:
            return F.linear(x, self.weight, self.bias)
        return onednn_linear(x, self.weight, self.bias)


def onednn_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def _auto_picks_onednn() -> bool:
    """x86-64 only: there oneDNN JIT-compiles AVX-512/AVX2 kernels and matches or beats MKL; on ARM
    (Apple laptops among them) torch's default BLAS is the better-tuned one."""
    return platform.machine().lower() in ("x86_64", "amd64") and onednn_available()


def use_onednn_linears(model: nn.Module, choice: CpuLinear) -> int:
    """Swap every `nn.Linear` of `model` to `OneDNNLinear` in place (parameters, ties and names kept);
    returns how many were swapped. `auto` swaps on x86-64 when this torch build has oneDNN, `aten`
    never."""
    if choice == "aten" or (choice == "auto" and not _auto_picks_onednn()):
        return 0
    if not onednn_available():
        raise RuntimeError("cpu_linear: onednn requested but this torch build has no oneDNN")
    swapped = 0
    for module in model.modules():
        if type(module) is nn.Linear:
            module.__class__ = OneDNNLinear
            swapped += 1
    return swapped
