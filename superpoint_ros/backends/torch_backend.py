"""PyTorch backend: the reference implementation (CPU or CUDA).

Precision: fp32, or fp16 on a CUDA device; int8 is refused (quantise an export instead).
torch and the project's torch modules (the network, the post-processing module) are imported
when the backend is opened, so that importing the backends never imports torch.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from ..devices import resolve_device
from ..errors import ConfigError
from ..frontend.config import FrontendConfig
from ..frontend.conventions import resolve_conventions
from .base import Backend, BackendInfo, BackendOptions
from .registry import register_backend


@register_backend
class TorchBackend(Backend):
    name = "torch"
    sources = ("torch",)
    auto_rank = 30

    @classmethod
    def unavailable_reason(cls) -> str | None:
        if importlib.util.find_spec("torch") is None:
            return "PyTorch is not installed (pip install 'superpoint_ros[torch]')"
        return None

    @classmethod
    def open(cls, source: Path, options: BackendOptions) -> TorchBackend:
        from ..model.weights import load_weights  # torch: only when this backend is opened

        if options.precision == "int8":
            raise ConfigError(
                "the torch backend runs fp32 or fp16; for int8 quantise an export "
                "(superpoint quantize) and run it with onnxruntime or tensorrt"
            )
        return cls(load_weights(source), options.config, options.device, options.precision)

    def __init__(
        self, weights, config: FrontendConfig, device: str | None = None, precision: str = "fp32"
    ):
        import torch

        from ..frontend.postprocess import SuperPointFrontendModule  # torch, like above
        from ..model.weights import build_model

        self.device = resolve_device(device)  # ConfigError in one line for a device not here
        self.torch = torch
        if precision == "fp16" and self.device.type != "cuda":
            raise ConfigError(
                f"fp16 runs on a CUDA device; the torch backend is on {self.device} (use fp32)"
            )
        self.fp16 = precision == "fp16"
        net = build_model(weights)
        conventions = resolve_conventions(weights.conventions, config.descriptor_sampling)
        sampling = conventions["descriptor_sampling"]
        config = config.replace(descriptor_sampling=sampling)
        self.module = SuperPointFrontendModule(net, config, sampling).eval().to(self.device)
        if self.fp16:
            self.module.half()
        self.info = BackendInfo(
            config,
            weights.model_config.descriptor_dim,
            conventions,
            {"device": str(self.device), "precision": precision, "layout": weights.layout},
        )

    def _tensor(self, image: np.ndarray):
        t = self.torch.from_numpy(np.ascontiguousarray(image)).to(self.device)
        return t.half() if self.fp16 else t

    def infer(self, image: np.ndarray) -> dict[str, np.ndarray]:
        with self.torch.inference_mode():
            outputs = self.module(self._tensor(image))
        names = ("keypoints", "scores", "descriptors")
        return {n: o[0].float().cpu().numpy() for n, o in zip(names, outputs)}

    def network_only(self, image: np.ndarray) -> None:
        with self.torch.inference_mode():
            out = self.module.net(self._tensor(image))
            if self.device.type == "cuda":
                self.torch.cuda.synchronize(self.device)
        return out
