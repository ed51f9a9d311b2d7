"""The training config system: YAML + dotted overrides, strict keys, typed values, run files."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import pytest
import yaml

from superpoint_ros.errors import ConfigError
from superpoint_ros.model.superpoint import ModelConfig
from superpoint_training import config as config_module
from superpoint_training.config import (
    from_dict,
    load_config,
    migrate_keys,
    parse_override,
    save_run_config,
    to_dict,
    valid_keys,
)
from superpoint_training.training.magicpoint import MagicPointConfig
from superpoint_training.training.runs import check_resume_config
from superpoint_training.training.superpoint import SuperPointTrainConfig

REPO = Path(__file__).resolve().parents[1]


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


def test_a_string_of_numbers_is_a_tuple_of_numbers():
    """``--set eps=1,3,5`` / ``rep_size=480x640`` (the protocol's syntax) on the one mechanism."""
    assert load_config(Outer, overrides=["train.size=64x80"]).train.size == (64, 80)
    assert load_config(Outer, overrides=["train.size=64, 80"]).train.size == (64, 80)
    with pytest.raises(ConfigError, match="'train.size\\[1\\]' expects int, got 'b'"):
        load_config(Outer, overrides=["train.size=64,b"])
    with pytest.raises(ConfigError, match="expects 2 values, got 1"):
        load_config(Outer, overrides=["train.size=64"])  # one number: a tuple of one
    with pytest.raises(ConfigError, match="'train.name' expects str"):
        load_config(Outer, overrides=["train.name=[1, 2]"])


@dataclass
class RenamedInner:
    renamed_keys: ClassVar[dict[str, str]] = {"thresh": "distance", "old_eps": "eps"}

    distance: float = 3.0
    eps: tuple[float, ...] = (1.0, 3.0)


@dataclass
class RenamedOuter:
    seed: int = 0
    eval: RenamedInner = field(default_factory=RenamedInner)


@pytest.fixture
def fresh_warnings(monkeypatch):
    monkeypatch.setattr(config_module, "_warned", set())


def test_renamed_keys_load_with_one_warning_line(tmp_path, caplog, fresh_warnings):
    path = tmp_path / "old.yaml"
    path.write_text("seed: 1\neval:\n  thresh: 2.5\n  old_eps: [4, 5]\n")
    with caplog.at_level(logging.WARNING, logger="superpoint_training.config"):
        conf = load_config(RenamedOuter, path)
        load_config(RenamedOuter, path)  # reported once per process
    assert conf.eval == RenamedInner(distance=2.5, eps=(4.0, 5.0))
    assert [r.getMessage() for r in caplog.records] == [
        "config key 'eval.thresh' is deprecated, read as 'eval.distance' (rename it)",
        "config key 'eval.old_eps' is deprecated, read as 'eval.eps' (rename it)",
    ]
    # the new name in an override wins over the old one in the YAML
    assert load_config(RenamedOuter, path, ["eval.distance=1"]).eval.distance == 1.0
    # a checkpoint's saved config as the base (what --resume does), and plain from_dict
    assert load_config(RenamedOuter, base={"eval": {"thresh": 2.0}}).eval.distance == 2.0
    assert from_dict(RenamedOuter, {"eval": {"thresh": 2.0}}).eval.distance == 2.0
    with pytest.raises(ConfigError, match="'eval.thresh' and 'eval.distance' are the same key"):
        load_config(RenamedOuter, base={"eval": {"thresh": 2.0, "distance": 1.0}})
    assert migrate_keys(RenamedOuter, {"eval": {"thresh": 2.0}, "x": 1}) == {
        "eval": {"distance": 2.0},
        "x": 1,
    }  # unknown keys are left for from_dict to report
    assert "thresh" not in valid_keys(RenamedOuter) and "eval.distance" in valid_keys(RenamedOuter)


def test_committed_configs_and_old_checkpoints_load_and_resume(caplog, fresh_warnings, tmp_path):
    """The eval keys renamed to the evaluation protocol's names (distance_thresh ->
    correct_distance, homography_eps -> eps) still load from the resolved config of a run made
    before the rename (what its checkpoints store: the committed run's config with the old
    names, as the step-4 run of 47,576 steps saved it), and resuming such a run is not
    refused."""
    saved = yaml.safe_load((REPO / "training" / "superpoint_demo" / "config.yaml").read_text())
    saved.pop("run", None)
    saved["eval"]["distance_thresh"] = saved["eval"].pop("correct_distance")
    saved["eval"]["homography_eps"] = saved["eval"].pop("eps")
    assert (saved["eval"]["distance_thresh"], saved["eval"]["homography_eps"]) == (3.0, [1, 3, 5])
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(saved))
    with caplog.at_level(logging.WARNING, logger="superpoint_training.config"):
        conf = load_config(SuperPointTrainConfig, path)
    assert (conf.eval.correct_distance, conf.eval.eps) == (3.0, (1.0, 3.0, 5.0))
    assert len(caplog.records) == 2 and "'eval.homography_eps' is deprecated" in caplog.text
    resumed = load_config(SuperPointTrainConfig, base=saved)  # --resume: the checkpoint's config
    assert resumed == conf
    check_resume_config(saved, to_dict(resumed))  # old names vs new: not a change of config
    # MagicPoint's eval.distance_thresh too (its checkpoints store it)
    old = {"eval": {"distance_thresh": 2.0}}
    assert load_config(MagicPointConfig, base=old).eval.correct_distance == 2.0
    for name in ("magicpoint.yaml", "magicpoint_cpu.yaml", "superpoint.yaml"):
        load_config(MagicPointConfig if "magic" in name else SuperPointTrainConfig,
                    REPO / "config" / "train" / name)  # fmt: skip
