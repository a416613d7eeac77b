"""The training command line is generated from ``TrainConfig``: one flag per field, the registries in --help."""
import dataclasses
import re

import pytest

from src.models import MODELS
from src.training.config import TrainConfig, build_parser, config_from_args, opt

from .conftest import run_module


def flags(parser) -> set[str]:
    return {s for a in parser._actions for s in a.option_strings}


def test_every_config_field_has_a_flag():
    parser = build_parser()
    dests = {a.dest for a in parser._actions}
    assert {f.name for f in dataclasses.fields(TrainConfig)} <= dests


def test_a_new_config_field_is_a_new_flag_with_no_other_edit():
    @dataclasses.dataclass
    class Extended(TrainConfig):
        warmup_steps: int = opt(0, "steps of linear LR warm-up")

    parser = build_parser(Extended)
    assert "--warmup-steps" in flags(parser)
    cfg = config_from_args(parser.parse_args(["--warmup-steps", "7"]), Extended)
    assert isinstance(cfg, Extended) and cfg.warmup_steps == 7


def test_the_command_line_gives_the_config_code_would_build():
    argv = ["--model", "can", "--model-arg", "width=4", "--filter", "gaussian", "--filter-param", "ksize=5",
            "--max-steps", "30", "--lr", "0.01", "--devices", "auto", "--no-test", "--quiet", "--pairs", "a", "b"]
    cfg = config_from_args(build_parser().parse_args(argv))
    assert cfg == TrainConfig(model="can", model_kwargs={"width": 4}, filter="gaussian", filter_params={"ksize": 5},
                              max_steps=30, lr=0.01, devices="auto", test=False, quiet=True, pairs=("a", "b"))


def test_the_defaults_of_the_command_line_are_the_configs():
    assert config_from_args(build_parser().parse_args([])) == TrainConfig()


def test_train_help_lists_every_model_and_filter_by_name():
    import subprocess
    import sys

    # the registries as a fresh process has them (tests register filters of their own in this one)
    code = "from src.filters import available; from src.models import MODELS; print(*MODELS, *available())"
    names = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout.split()
    assert set(MODELS) <= set(names) and "sobel" in names
    res = run_module("src.training.train", "--help")
    assert res.returncode == 0
    text = re.sub(r"-\s+", "-", " ".join(res.stdout.split()))  # argparse may wrap at a hyphen
    missing = [n for n in names if n not in text]
    assert not missing, f"--help does not name {missing}"


def test_a_choice_outside_its_list_is_refused_in_one_line():
    res = run_module("src.training.train", "--loss", "huber")
    assert res.returncode == 2 and "invalid choice: 'huber'" in res.stderr


@pytest.mark.parametrize("field", ["model_kwargs", "filter_params"])
def test_a_malformed_key_value_option_is_refused_in_one_line(field):
    flag = "--model-arg" if field == "model_kwargs" else "--filter-param"
    res = run_module("src.training.train", flag, "width4")
    assert res.returncode == 2 and res.stderr.strip() == f"error: {flag} 'width4': expected KEY=VALUE"
