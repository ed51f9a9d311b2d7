"""The random-weights SuperPoint the node benchmarks run when no trained model is given.

A helper module of ``bench_node.py`` and ``bench_node_replay.py`` (run as scripts, so this
folder is on ``sys.path``); the tests make theirs with ``test/conftest.py``'s
``random_superpoint`` fixture.
"""

from __future__ import annotations

from pathlib import Path


def random_onnx(folder: Path, *, peaky: bool = False, seed: int = 0) -> Path:
    """A seeded random-weights SuperPoint saved as ``folder/random.pt`` and exported with the
    default ``FrontendConfig`` as ``folder/random.onnx`` (returned).

    ``peaky`` multiplies the detector head's last convolution by 40, so keypoint scores are
    well separated as a trained model's are (the replay compares node and offline figures,
    which ties between near-equal scores would blur).
    """
    import torch

    from superpoint_ros.frontend import FrontendConfig
    from superpoint_ros.model.superpoint import SuperPointNet
    from superpoint_ros.model.weights import checkpoint_dict, load_weights, save_checkpoint
    from superpoint_ros.onnx_export import export_onnx

    torch.manual_seed(seed)
    net = SuperPointNet()
    if peaky:
        with torch.no_grad():
            net.detector[1].conv.weight.mul_(40.0)
    weights = load_weights(save_checkpoint(folder / "random.pt", checkpoint_dict(net)))
    return export_onnx(weights, folder / "random.onnx", FrontendConfig())
