"""What keeps results right on other devices, checked on the CPU: float32 without TF32 inside the forward (and the
caller's switches back afterwards), no float64 where a device has none (Apple's `mps`), gradients with respect to
the input in eval mode (saliency maps). test_cuda.py checks the same models on a CUDA GPU."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from torch.utils._python_dispatch import TorchDispatchMode

from faster_rcnn_hub import FasterRCNNForObjectDetection, FasterRCNNImageProcessor
from faster_rcnn_hub.default_model import default_model_dir, example_image_path
from faster_rcnn_hub.models.faster_rcnn import fused_inference


@pytest.fixture(scope="module")
def default_model():
    folder = default_model_dir()
    processor = FasterRCNNImageProcessor.from_pretrained(folder)
    return FasterRCNNForObjectDetection.from_pretrained(folder).eval(), processor(images=[Image.open(example_image_path())])


def _switch_values() -> list:
    return [getattr(settings, name) for settings, name, _, _ in fused_inference.tf32_switches()]


def _record_switches_inside(model) -> tuple[list, torch.utils.hooks.RemovableHandle]:
    seen = []
    handle = model.backbone.register_forward_hook(lambda *_: seen.append(_switch_values()))
    return seen, handle


def test_forward_runs_float32_without_tf32_and_restores_the_callers_switches(default_model):
    model, inputs = default_model
    switches = fused_inference.tf32_switches()
    tf32 = [tf32_value for _, _, tf32_value, _ in switches]
    float32 = [float32_value for _, _, _, float32_value in switches]
    before = _switch_values()
    seen, handle = _record_switches_inside(model)
    try:
        for settings, name, tf32_value, _ in switches:  # the caller (or PyTorch's default) allows TF32
            setattr(settings, name, tf32_value)
        with torch.no_grad():
            model(**inputs)
        assert seen == [float32] and _switch_values() == tf32

        model.enable_tf32()  # the opt-in: TF32 inside, whatever the caller set
        for settings, name, _, float32_value in switches:
            setattr(settings, name, float32_value)
        with torch.no_grad():
            model(**inputs)
        assert seen[-1] == tf32 and _switch_values() == float32

        model.enable_tf32(False)
        for settings, name, tf32_value, _ in switches:
            setattr(settings, name, tf32_value)
        with pytest.raises(Exception, match="pixel_values"):
            model(pixel_values=inputs["pixel_values"][:, :2])  # a forward that fails still restores them
        assert _switch_values() == tf32
    finally:
        handle.remove()
        model.enable_tf32(False)
        for (settings, name, _, _), value in zip(switches, before):
            setattr(settings, name, value)


class RefuseFloat64(TorchDispatchMode):
    """A device without float64, as Apple's `mps` is: any operation that makes a float64 tensor fails the way
    `mps` fails (TypeError), and is recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.refused: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        outputs = result if isinstance(result, (tuple, list)) else [result]
        if kwargs.get("dtype") == torch.float64 or any(
            isinstance(output, torch.Tensor) and output.dtype == torch.float64 for output in outputs
        ):
            self.refused.append(str(func))
            raise TypeError("Cannot convert a tensor to float64 dtype: this device does not support float64.")
        return result


def test_inference_makes_no_float64_tensor_on_a_device_without_float64():
    folder = default_model_dir()
    model = FasterRCNNForObjectDetection.from_pretrained(folder).eval()  # its own copy: nothing folded yet
    inputs = FasterRCNNImageProcessor.from_pretrained(folder)(images=[Image.open(example_image_path())])
    with torch.no_grad():
        expected = model(**inputs)
    fresh = FasterRCNNForObjectDetection.from_pretrained(folder).eval()
    fused_inference.has_float64.cache_clear()  # the CPU's answer, cached by the run above, is asked again below
    try:
        with torch.no_grad(), RefuseFloat64() as refusing:
            found = fresh(**inputs)
    finally:
        fused_inference.has_float64.cache_clear()
    # Only the probe that asks the device whether it has float64; nothing else tried to make a float64 tensor.
    assert refusing.refused == ["aten.zeros.default"]
    # Folded in float32 instead of float64: the same detections, to float32 rounding.
    count = int(expected.num_detections[0])
    assert int(found.num_detections[0]) == count and count > 0
    torch.testing.assert_close(found.scores[0, :count], expected.scores[0, :count], rtol=0, atol=1e-4)
    torch.testing.assert_close(found.pred_boxes[0, :count], expected.pred_boxes[0, :count], rtol=0, atol=1e-2)


def test_gradient_with_respect_to_the_input_in_eval_mode(default_model):
    model, inputs = default_model
    pixel_values = inputs["pixel_values"].clone().requires_grad_(True)
    outputs = model(**{**inputs, "pixel_values": pixel_values})
    outputs.scores[0, : int(outputs.num_detections[0])].sum().backward()
    assert pixel_values.grad is not None
    saliency = pixel_values.grad.abs().sum(dim=1)[0]
    height, width = inputs["image_sizes"][0].tolist()
    assert bool(torch.isfinite(saliency).all()) and float(saliency[:height, :width].max()) > 0
    # The gradient-tracking run took the unfused path and finds what the fused inference finds.
    with torch.no_grad():
        fused = model(**inputs)
    count = int(fused.num_detections[0])
    torch.testing.assert_close(outputs.scores[0, :count].detach(), fused.scores[0, :count], rtol=0, atol=1e-4)
