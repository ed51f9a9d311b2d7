"""Weight layouts: state dicts of each third-party layout, built with random values from the
shapes in PROTOCOL.md, must load and compute what an independent forward written here from
that layout's own keys computes."""

import pickle

import pytest
import torch
import torch.nn.functional as F

from superpoint_ros.model.superpoint import ModelConfig, SuperPointNet
from superpoint_ros.model.weights import (
    WeightsError,
    build_model,
    checkpoint_dict,
    load_weights,
    save_checkpoint,
)

ENCODER = [(1, 64), (64, 64), (64, 64), (64, 64), (64, 128), (128, 128), (128, 128), (128, 128)]


def _conv(g, c_in, c_out, k):
    return torch.randn(c_out, c_in, k, k, generator=g) * (
        2.0 / (c_in * k * k)
    ) ** 0.5, torch.randn(c_out, generator=g) * 0.1


def _bn(g, c, prefix):
    return {
        f"{prefix}.weight": 1 + 0.1 * torch.randn(c, generator=g),
        f"{prefix}.bias": 0.1 * torch.randn(c, generator=g),
        f"{prefix}.running_mean": 0.1 * torch.randn(c, generator=g),
        f"{prefix}.running_var": 0.5 + torch.rand(c, generator=g),
        f"{prefix}.num_batches_tracked": torch.tensor(7),
    }


def magicleap_state_dict(g):
    names = ["conv1a", "conv1b", "conv2a", "conv2b", "conv3a", "conv3b", "conv4a", "conv4b"]
    sd = {}
    for name, (ci, co) in zip(names, ENCODER):
        sd[f"{name}.weight"], sd[f"{name}.bias"] = _conv(g, ci, co, 3)
    for name, ci, co, k in [
        ("convPa", 128, 256, 3),
        ("convPb", 256, 65, 1),
        ("convDa", 128, 256, 3),
        ("convDb", 256, 256, 1),
    ]:
        sd[f"{name}.weight"], sd[f"{name}.bias"] = _conv(g, ci, co, k)
    return sd


def magicleap_forward(sd, x):
    def c(name, x, relu=True):
        y = F.conv2d(
            x,
            sd[f"{name}.weight"],
            sd[f"{name}.bias"],
            padding=sd[f"{name}.weight"].shape[-1] // 2,
        )
        return F.relu(y) if relu else y

    for i, pair in enumerate(
        [("conv1a", "conv1b"), ("conv2a", "conv2b"), ("conv3a", "conv3b"), ("conv4a", "conv4b")]
    ):
        if i:
            x = F.max_pool2d(x, 2)
        x = c(pair[1], c(pair[0], x))
    return c("convPb", c("convPa", x), False), c("convDb", c("convDa", x), False)


def eric_state_dict(g):
    sd = {}
    prefixes = ["inc.conv.conv"] + [f"down{i}.mpconv.1.conv" for i in (1, 2, 3)]
    for s, prefix in enumerate(prefixes):
        for j, (idx_conv, idx_bn) in enumerate([(0, 1), (3, 4)]):
            ci, co = ENCODER[2 * s + j]
            sd[f"{prefix}.{idx_conv}.weight"], sd[f"{prefix}.{idx_conv}.bias"] = _conv(
                g, ci, co, 3
            )
            sd.update(_bn(g, co, f"{prefix}.{idx_bn}"))
    for conv, bn, ci, co, k in [
        ("convPa", "bnPa", 128, 256, 3),
        ("convPb", "bnPb", 256, 65, 1),
        ("convDa", "bnDa", 128, 256, 3),
        ("convDb", "bnDb", 256, 256, 1),
    ]:
        sd[f"{conv}.weight"], sd[f"{conv}.bias"] = _conv(g, ci, co, k)
        sd.update(_bn(g, co, bn))
    return {"n_iter": 1000, "model_state_dict": sd, "optimizer_state_dict": {}, "loss": 0.5}


def eric_forward(sd, x):
    def cb(conv, bn, x, relu=True):
        w = sd[f"{conv}.weight"]
        y = F.conv2d(x, w, sd[f"{conv}.bias"], padding=w.shape[-1] // 2)
        y = F.batch_norm(
            y,
            sd[f"{bn}.running_mean"],
            sd[f"{bn}.running_var"],
            sd[f"{bn}.weight"],
            sd[f"{bn}.bias"],
            False,
            0.0,
            1e-5,
        )
        return F.relu(y) if relu else y

    prefixes = ["inc.conv.conv"] + [f"down{i}.mpconv.1.conv" for i in (1, 2, 3)]
    for s, p in enumerate(prefixes):
        if s:
            x = F.max_pool2d(x, 2)
        x = cb(f"{p}.3", f"{p}.4", cb(f"{p}.0", f"{p}.1", x))
    semi = cb("convPb", "bnPb", cb("convPa", "bnPa", x), False)
    desc = cb("convDb", "bnDb", cb("convDa", "bnDa", x), False)
    return semi, desc


def rpautrat_state_dict(g):
    sd = {}
    for s in range(4):
        for j in range(2):
            ci, co = ENCODER[2 * s + j]
            p = f"backbone.{s}.{j}"
            sd[f"{p}.conv.weight"], sd[f"{p}.conv.bias"] = _conv(g, ci, co, 3)
            sd.update(_bn(g, co, f"{p}.bn"))
    for head, co in (("detector", 65), ("descriptor", 256)):
        for j, (ci, c, k) in enumerate([(128, 256, 3), (256, co, 1)]):
            sd[f"{head}.{j}.conv.weight"], sd[f"{head}.{j}.conv.bias"] = _conv(g, ci, c, k)
            sd.update(_bn(g, c, f"{head}.{j}.bn"))
    return sd


def rpautrat_forward(sd, x):
    def block(p, x, relu=True):  # conv -> ReLU -> BN(eps 1e-3)
        w = sd[f"{p}.conv.weight"]
        y = F.conv2d(x, w, sd[f"{p}.conv.bias"], padding=w.shape[-1] // 2)
        if relu:
            y = F.relu(y)
        return F.batch_norm(
            y,
            sd[f"{p}.bn.running_mean"],
            sd[f"{p}.bn.running_var"],
            sd[f"{p}.bn.weight"],
            sd[f"{p}.bn.bias"],
            False,
            0.0,
            1e-3,
        )

    for s in range(4):
        if s:
            x = F.max_pool2d(x, 2)
        x = block(f"backbone.{s}.1", block(f"backbone.{s}.0", x))
    semi = block("detector.1", block("detector.0", x), False)
    desc = block("descriptor.1", block("descriptor.0", x), False)
    return semi, desc


LAYOUTS = {
    "magicleap": (magicleap_state_dict, magicleap_forward, "magicleap_demo"),
    "eric_yyjau": (eric_state_dict, eric_forward, "eric_yyjau"),
    "rpautrat": (rpautrat_state_dict, rpautrat_forward, "rpautrat_tf"),
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_layout_loads_and_matches_reference_forward(tmp_path, layout):
    make, forward, sampling = LAYOUTS[layout]
    g = torch.Generator().manual_seed(0)
    obj = make(g)
    path = tmp_path / "weights.pth"
    torch.save(obj, path)
    weights = load_weights(path)
    assert weights.layout == layout
    assert weights.conventions["descriptor_sampling"] == sampling
    model = build_model(weights)
    x = torch.rand(1, 1, 32, 40, generator=g)
    sd = obj["model_state_dict"] if layout == "eric_yyjau" else obj
    ref_semi, ref_desc = forward(sd, x)
    with torch.no_grad():
        out = model(x)
    assert torch.allclose(out["logits"], ref_semi, atol=1e-4, rtol=1e-4)
    assert torch.allclose(out["descriptors_dense"], ref_desc, atol=1e-4, rtol=1e-4)


def test_magicleap_parameter_count():
    sd = magicleap_state_dict(torch.Generator().manual_seed(0))
    assert len(sd) == 24
    assert sum(v.numel() for v in sd.values()) == 1_300_865  # PROTOCOL.md's figure


def test_own_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    net = SuperPointNet(ModelConfig(backbone="vgg_bn", descriptor_dim=128)).eval()
    path = save_checkpoint(tmp_path / "c.pt", checkpoint_dict(net, step=5))
    weights = load_weights(path)
    assert weights.layout == "superpoint_ros" and weights.model_config.descriptor_dim == 128
    x = torch.rand(1, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(build_model(weights)(x)["logits"], net(x)["logits"])


def test_unknown_layout_names_known_ones(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"encoder.weight": torch.zeros(1)}, path)
    with pytest.raises(WeightsError, match="magicleap.*rpautrat.*eric_yyjau"):
        load_weights(path)


class Evil:
    def __reduce__(self):
        return (print, ("this ran code",))


def test_checkpoint_cannot_run_code(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"conv1a.weight": Evil()}, f)
    with pytest.raises(WeightsError):
        load_weights(path)
    assert "this ran code" not in capsys.readouterr().out


def test_missing_and_garbage_files(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        load_weights(tmp_path / "nope.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot read"):
        load_weights(tmp_path / "junk.pth")
