"""PyTorch backend: the reference implementation (CPU or CUDA)."""

from __future__ import annotations

import importlib.util

import numpy as np

from ..errors import BackendUnavailable
from ..frontend.config import FrontendConfig
from ..frontend.conventions import resolve_conventions
from .base import Backend, BackendInfo


class TorchBackend(Backend):
    name = "torch"

    @classmethod
    def unavailable_reason(cls) -> str | None:
        if importlib.util.find_spec("torch") is None:
            return "PyTorch is not installed (pip install 'superpoint_ros[torch]')"
        return None

    def __init__(self, weights, config: FrontendConfig, device: str | None = None,
                 fp16: bool = False):
        import torch

        from ..frontend.postprocess import SuperPointFrontendModule
        from ..model.weights import build_model

        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise BackendUnavailable(f"device {device!r} asked for, but CUDA is not available")
        self.torch = torch
        self.device = torch.device(device)
        self.fp16 = fp16 and self.device.type == "cuda"
        net = build_model(weights)
        conventions = resolve_conventions(weights.conventions, config.descriptor_sampling)
        sampling = conventions["descriptor_sampling"]
        config = config.replace(descriptor_sampling=sampling)
        self.module = SuperPointFrontendModule(net, config, sampling).eval().to(self.device)
        if self.fp16:
            self.module.half()
        self.info = BackendInfo(
            config, weights.model_config.descriptor_dim, conventions,
            {"device": str(self.device), "fp16": self.fp16, "layout": weights.layout},
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
