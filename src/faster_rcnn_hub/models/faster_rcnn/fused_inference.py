"""Fused inference: each convolution with the frozen BatchNorm after it folded in, run on channels-last tensors.

The model keeps mmdetection's layers (`Conv2d`, `BatchNorm2d`, ...): its state dict, `save_pretrained` files and
training see exactly the checkpoint's parameters. At inference (eval mode, no gradient wanted) each convolution
runs instead from a derived copy: `weight * gamma / sqrt(var + eps)` and the matching bias, computed in float64 and
rounded once to the compute dtype (in float32 on a device without float64, such as Apple's `mps`). On a CPU the
copy runs through oneDNN's fused kernels (convolution + bias + ReLU, or + residual + ReLU, in one pass over
memory); elsewhere through `conv2d` and in-place ReLU.

Folding changes float rounding, not the function: the outputs differ from the unfused ones by float32 rounding
(about 1e-6 relative), well inside the fixtures' parity tolerance, which the parity tests check on every model.

The copies are cached per convolution and rebuilt when any source tensor changes: a new device or dtype
(`model.to(...)`), an in-place update (training, `load_state_dict`) or a replaced parameter.
"""

from __future__ import annotations

import contextlib
import functools
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

_FOLDED: weakref.WeakKeyDictionary[nn.Conv2d, FoldedConv] = weakref.WeakKeyDictionary()


class FusedInferenceMixin:
    """For modules with a fused inference path: `fuse_for_inference` switches it off (it is on by default)."""

    fuse_for_inference: bool = True

    def runs_fused(self, *sources: torch.Tensor) -> bool:
        """Whether this forward may take the inference path: eval mode, and no gradient wanted for `sources`
        (the weights the fused path would copy, and the inputs it would read without autograd: a gradient with
        respect to the image, for a saliency map, takes the unfused path)."""
        return (
            self.fuse_for_inference
            and not self.training
            and not (torch.is_grad_enabled() and any(source.requires_grad for source in sources))
        )


def _source_key(tensors: tuple[torch.Tensor | None, ...]) -> tuple:
    return tuple(
        None if tensor is None else (tensor.data_ptr(), tensor._version, tensor.device, tensor.dtype)
        for tensor in tensors
    )


@functools.cache
def _fused_kernels_available() -> bool:
    # oneDNN's fused convolution op is what torch.compile's CPU backend emits; a torch build without it (or a
    # future one that renames it) falls back to conv2d + in-place ReLU.
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        return hasattr(torch.ops.mkldnn, "_convolution_pointwise")
    except (AttributeError, RuntimeError):
        return False


def mkldnn_supports(tensor: torch.Tensor) -> bool:
    """Whether oneDNN's fused convolution kernels take this tensor on this machine (CPU; float32, or bfloat16 /
    float16 where the CPU has the instructions)."""
    if tensor.device.type != "cpu" or not _fused_kernels_available():
        return False
    if tensor.dtype == torch.float32:
        return True
    if tensor.dtype == torch.bfloat16:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    if tensor.dtype == torch.float16:
        return bool(torch.ops.mkldnn._is_mkldnn_fp16_supported())
    return False


def cpu_runs_fast(dtype: torch.dtype) -> bool:
    """Whether this CPU has native units for `dtype`'s convolutions (always for float32; bfloat16 and float16
    need AVX-512 BF16/FP16 or AMX, which oneDNN reports). Without them a half-precision network is emulated and
    runs several times slower than float32."""
    if dtype == torch.float32:
        return True
    return mkldnn_supports(torch.empty(0, dtype=dtype))


@dataclass
class FoldedConv:
    """A convolution with its BatchNorm folded in: `weight`, `bias` and the convolution's geometry."""

    weight: torch.Tensor
    bias: torch.Tensor
    stride: list[int]
    padding: list[int]
    dilation: list[int]
    groups: int
    source_key: tuple

    def __call__(
        self, hidden_states: torch.Tensor, relu: bool = False, residual: torch.Tensor | None = None
    ) -> torch.Tensor:
        """`relu?(conv(x) + bias [+ residual])`, on a channels-last `x`; the result is channels-last."""
        hidden_states = hidden_states.contiguous(memory_format=torch.channels_last)
        if mkldnn_supports(hidden_states):
            geometry = (self.padding, self.stride, self.dilation, self.groups)
            unary = "relu" if relu else "none"
            if residual is None:
                return torch.ops.mkldnn._convolution_pointwise(
                    hidden_states, self.weight, self.bias, *geometry, unary, [], ""
                )
            residual = residual.contiguous(memory_format=torch.channels_last)
            return torch.ops.mkldnn._convolution_pointwise.binary(
                hidden_states, residual, self.weight, self.bias, *geometry, "add", None, unary if relu else None, [], ""
            )
        output = F.conv2d(hidden_states, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        if residual is not None:
            output += residual
        return output.relu_() if relu else output


def folded_conv(conv: nn.Conv2d, norm: nn.BatchNorm2d | None = None) -> FoldedConv:
    """The inference copy of `conv` followed by the eval-mode BatchNorm `norm` (or `conv` alone), cached."""
    sources = (conv.weight, conv.bias)
    if norm is not None:
        sources += (norm.weight, norm.bias, norm.running_mean, norm.running_var)
    key = _source_key(sources)
    cached = _FOLDED.get(conv)
    if cached is not None and cached.source_key == key:
        return cached
    folded = _fold(conv, norm, key)
    _FOLDED[conv] = folded
    return folded


@functools.cache
def has_float64(device: torch.device) -> bool:
    """Whether `device` computes in float64 (Apple's `mps` refuses it); asked once per device."""
    try:
        torch.zeros((), dtype=torch.float64, device=device)
    except (TypeError, RuntimeError):
        return False
    return True


def _fold(conv: nn.Conv2d, norm: nn.BatchNorm2d | None, key: tuple) -> FoldedConv:
    # Computed outside any inference_mode so that the copies stay usable in later plain no_grad calls.
    with torch.inference_mode(False), torch.no_grad():
        dtype = conv.weight.dtype
        fold_dtype = torch.float64 if has_float64(conv.weight.device) else torch.float32
        weight = conv.weight.detach().to(fold_dtype)
        if conv.bias is not None:
            bias = conv.bias.detach().to(fold_dtype)
        else:
            bias = torch.zeros(weight.size(0), dtype=fold_dtype, device=weight.device)
        if norm is not None:
            scale = norm.weight.detach().to(fold_dtype) / torch.sqrt(norm.running_var.detach().to(fold_dtype) + norm.eps)
            weight = weight * scale[:, None, None, None]
            bias = (bias - norm.running_mean.detach().to(fold_dtype)) * scale + norm.bias.detach().to(fold_dtype)
        return FoldedConv(
            weight=weight.to(dtype).contiguous(),
            bias=bias.to(dtype),
            stride=list(conv.stride),
            padding=list(conv.padding),
            dilation=list(conv.dilation),
            groups=conv.groups,
            source_key=key,
        )


def tf32_switches() -> list[tuple[Any, str, Any, Any]]:
    """`(settings object, attribute, value for TF32, value for true float32)` of each process-wide switch that
    decides whether CUDA runs float32 convolutions and matrix products in TF32."""
    if hasattr(torch.backends.cudnn, "conv") and hasattr(torch.backends.cudnn.conv, "fp32_precision"):
        # PyTorch 2.9 and later: the precision settings (mixing them with the older flags is an error there).
        return [
            (torch.backends.cudnn.conv, "fp32_precision", "tf32", "ieee"),
            (torch.backends.cuda.matmul, "fp32_precision", "tf32", "ieee"),
        ]
    return [(torch.backends.cudnn, "allow_tf32", True, False), (torch.backends.cuda.matmul, "allow_tf32", True, False)]


@contextlib.contextmanager
def float32_precision_scope(allow_tf32: bool) -> Iterator[None]:
    """Run float32 convolutions and matrix products on CUDA in true float32 (`allow_tf32=False`) or TF32, and put
    the caller's settings back afterwards, also when the body raises.

    PyTorch lets cuDNN run float32 convolutions in TF32 by default on Ampere and later GPUs (10 mantissa bits
    instead of 23); a detector amplifies that rounding, enough to move detections past mmdetection's tolerance.
    The switches are process-wide, so another thread running float32 CUDA work at the same time sees them too.
    """
    switches = tf32_switches()
    saved = [getattr(settings, name) for settings, name, _, _ in switches]
    try:
        for settings, name, tf32_value, float32_value in switches:
            setattr(settings, name, tf32_value if allow_tf32 else float32_value)
        yield
    finally:
        for (settings, name, _, _), value in zip(switches, saved):
            setattr(settings, name, value)


def float32_precision_of_forward(forward: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a model's `forward` to run inside `float32_precision_scope(model.allow_tf32)`; the signature
    stays the forward's own (transformers reads it)."""

    @functools.wraps(forward)
    def scoped_forward(model: nn.Module, *args: Any, **kwargs: Any) -> Any:
        with float32_precision_scope(getattr(model, "allow_tf32", False)):
            return forward(model, *args, **kwargs)

    return scoped_forward


__all__ = [
    "FoldedConv",
    "FusedInferenceMixin",
    "cpu_runs_fast",
    "float32_precision_of_forward",
    "float32_precision_scope",
    "folded_conv",
    "has_float64",
    "mkldnn_supports",
    "tf32_switches",
]
