"""The training config system: YAML + dotted overrides, strict keys, typed values, run files."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import yaml

from superpoint_ros.errors import ConfigError
from superpoint_ros.model.superpoint import ModelConfig
from superpoint_training.config import (
    from_dict,
    load_config,
    parse_override,
    save_run_config,
    to_dict,
    valid_keys,
)


@dataclass
class Inner:
    steps: int = 10  # a count
    lr: float = 1e-3  # a rate
    size: tuple[int, int] = (120, 160)  # (height, width)
    name: str = "adam"


@dataclass
class Outer:
    seed: int = 0
    flag: bool = False
    train: Inner = field(default_factory=Inner)
    model: ModelConfig = field(default_factory=lambda: ModelConfig(descriptor_dim=0))


def test_parse_override_yaml_values():
    assert parse_override("train.steps=100") == ("train.steps", 100)
    assert parse_override("train.lr=0.5") == ("train.lr", 0.5)
    assert parse_override("flag=true") == ("flag", True)
    assert parse_override("train.size=[64, 80]") == ("train.size", [64, 80])
    assert parse_override("model.backbone_args={channels: [8, 8]}") == (
        "model.backbone_args",
        {"channels": [8, 8]},
    )
    assert parse_override("train.name=adamw") == ("train.name", "adamw")
    with pytest.raises(ConfigError, match="key=value"):
        parse_override("train.steps")
    with pytest.raises(ConfigError, match="dotted name"):
        parse_override("train..steps=3")


def test_overrides_applied_and_typed():
    conf = load_config(
        Outer, overrides=["train.steps=7", "train.lr=1e-4", "train.size=[64, 80]", "seed=3"]
    )
    assert conf.train.steps == 7
    # YAML 1.1 reads "1e-4" as a string; a float-typed key converts it
    assert isinstance(conf.train.lr, float) and conf.train.lr == pytest.approx(1e-4)
    assert conf.train.size == (64, 80)  # list -> tuple
    assert conf.seed == 3
    assert conf.train.name == "adam"  # untouched default
    # the field default of a nested dataclass is kept where the YAML doesn't mention it
    assert conf.model.descriptor_dim == 0


def test_yaml_file_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("seed: 5\ntrain:\n  steps: 50\n  name: sgd\nmodel:\n  head_channels: 16\n")
    conf = load_config(Outer, path, ["train.steps=60"])
    assert (conf.seed, conf.train.steps, conf.train.name) == (5, 60, "sgd")
    assert conf.model.head_channels == 16 and conf.model.descriptor_dim == 0


def test_unknown_keys_rejected_with_valid_list(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(Outer, overrides=["train.stpes=3"])
    msg = str(err.value)
    assert "'train.stpes'" in msg and "did you mean 'train.steps'" in msg
    assert "train.lr" in msg and "train.size" in msg  # valid keys listed
    with pytest.raises(ConfigError, match="unknown config key 'nope'"):
        load_config(Outer, overrides=["nope=1"])
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  batch: 3\n")
    with pytest.raises(ConfigError, match="'train.batch'"):
        load_config(Outer, path)
    # a leaf is not a section
    with pytest.raises(ConfigError, match="is a value, not a section"):
        load_config(Outer, overrides=["seed=1", "seed.x=2"])


def test_wrong_types_rejected():
    with pytest.raises(ConfigError, match="'train.steps' expects int"):
        load_config(Outer, overrides=["train.steps=abc"])
    with pytest.raises(ConfigError, match="'train.steps' expects int"):
        load_config(Outer, overrides=["train.steps=1.5"])
    with pytest.raises(ConfigError, match="'flag' expects bool"):
        load_config(Outer, overrides=["flag=3"])
    with pytest.raises(ConfigError, match="expects 2 values"):
        load_config(Outer, overrides=["train.size=[1, 2, 3]"])
    with pytest.raises(ConfigError, match="'train' expects Inner"):
        load_config(Outer, overrides=["train=5"])


def test_dict_fields_accept_any_subkey():
    conf = load_config(Outer, overrides=["model.backbone_args.channels=[8, 8, 16, 16]"])
    assert conf.model.backbone_args == {"channels": [8, 8, 16, 16]}


def test_valid_keys_lists_nested():
    keys = valid_keys(Outer)
    assert "train.steps" in keys and "model.backbone_args" in keys and "seed" in keys


def test_run_config_round_trip(tmp_path):
    conf = load_config(Outer, overrides=["train.steps=9"])
    path = save_run_config(tmp_path / "run", conf, {"git_revision": "abc", "seed": 0})
    data = yaml.safe_load(path.read_text())
    assert data["run"] == {"git_revision": "abc", "seed": 0}
    assert data["train"]["size"] == [120, 160]
    # a run's config.yaml is a valid --config (its run: section is metadata)
    again = load_config(Outer, path)
    assert to_dict(again) == to_dict(conf)
    assert from_dict(Outer, to_dict(conf)) == conf
