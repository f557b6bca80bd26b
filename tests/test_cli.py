"""The `entmin` command: help on every command, clear errors, a tiny end-to-end run."""
import json

import pytest
from typer.testing import CliRunner

from entmin.cli import app

runner = CliRunner()
COMMANDS = sorted(c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands)


@pytest.mark.parametrize("cmd", COMMANDS)
def test_help(cmd):
    res = runner.invoke(app, [cmd, "--help"])
    assert res.exit_code == 0 and "Usage" in res.output


def test_unknown_method_and_objective_are_clear_errors(tmp_path):
    res = runner.invoke(app, ["run", "--method", "tenet", "--store", str(tmp_path / "s.sqlite")])
    assert res.exit_code == 2 and "--method" in res.output and "tenet" in res.output
    res = runner.invoke(app, ["run", "--objective", "adadm", "--store", str(tmp_path / "s.sqlite")])
    assert res.exit_code == 2 and "--objective" in res.output and "adadm" in res.output


def test_missing_data_dir_names_the_fix(tmp_path):
    res = runner.invoke(app, ["run", "--data-dir", str(tmp_path / "nowhere"), "--corruptions", "fog",
                              "--store", str(tmp_path / "s.sqlite"), "--cache-dir", str(tmp_path)])
    # missing data: a runtime failure that names the folder and the files missing there (not an apt-get hint:
    # the folder may hold the user's own IDX data; the hint is for the default locations, test_data.py)
    assert res.exit_code == 1 and "no IDX dataset in" in res.output and "t10k-labels-idx1-ubyte" in res.output


def test_report_on_missing_store(tmp_path):
    res = runner.invoke(app, ["report", "--store", str(tmp_path / "none.sqlite")])
    assert res.exit_code == 1 and "not found" in res.output


def test_rewards_and_contact_sheet_write_pngs(tmp_path, fmnist_test):
    assert runner.invoke(app, ["rewards", "--out", str(tmp_path / "r.png")]).exit_code == 0
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"
    assert runner.invoke(app, ["contact-sheet", "--out", str(tmp_path / "c.png")]).exit_code == 0
    assert (tmp_path / "c.png").stat().st_size > 10_000


def test_sweep_end_to_end(tmp_path, fmnist_test):
    res = runner.invoke(app, ["sweep", "--methods", "tent", "--objectives", "em,adadem", "--lrs", "1e-3,1e-2",
                              "--protocols", "single", "--corruptions", "contrast", "--n-per-domain", "128",
                              "--store", str(tmp_path / "s.sqlite"), "--out", str(tmp_path / "o"),
                              "--cache-dir", str(tmp_path / "cache"), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert "tent+adadem" in res.output and "| 0.01 |" in res.output
    assert (tmp_path / "o" / "lr_sweep_cnn_single.png").exists()


def test_info_reports_versions_and_optional_extras():
    import torch

    res = runner.invoke(app, ["info"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert d["torch"] == torch.__version__
    assert set(d["optional"]) == {"optuna", "ray", "timm", "torchvision", "imagecorruptions", "stable-baselines3",
                                  "minigrid", "open_clip_torch"}
    assert d["optional"]["optuna"] is not None  # a test dependency (the dev extra)
    assert d["checkpoints"]["fmnist_cnn.json"] > 0.9
