"""Entropy-objective training on tiny budgets: every task and loss runs, stores, resumes; data splits."""
import pytest
import torch
from typer.testing import CliRunner

from entmin.bench.store import ResultStore
from entmin.cli import app
from entmin.training.entropy_training import (
    TrainConfig,
    labelled_indices,
    long_tail_indices,
    per_class_f1,
    run_training,
)


def test_splits():
    y = torch.arange(1000) % 10
    lab = labelled_indices(y, 4, seed=0)
    assert torch.bincount(y[lab]).tolist() == [4] * 10
    lt = long_tail_indices(y, 10.0, seed=0)
    counts = torch.bincount(y[lt]).tolist()
    assert counts[0] == 100 and counts[-1] == 10 and counts == sorted(counts, reverse=True)


def test_per_class_f1():
    y = torch.tensor([0, 0, 1, 1])
    assert per_class_f1(torch.tensor([0, 0, 1, 1]), y, 2) == [1.0, 1.0]
    assert per_class_f1(torch.tensor([0, 0, 0, 1]), y, 2) == pytest.approx([0.8, 2 / 3])


def test_config_errors():
    with pytest.raises(ValueError, match="'loss'"):
        TrainConfig(task="semi", loss="mix_ent")
    with pytest.raises(ValueError, match="'task'"):
        TrainConfig(task="rl")


@pytest.mark.parametrize("task,loss", [("supervised", "min_ent"), ("supervised", "mix_ent"),
                                       ("semi", "entmin_adadem"), ("semi", "fixmatch_adadem"),
                                       ("imbalanced", "entmin")])
def test_training_runs_and_resumes(tmp_path, task, loss, fmnist_test):
    cfg = TrainConfig(task=task, loss=loss, steps=4, batch_size=16, n_train=512 if task == "supervised" else None,
                      labels_per_class=2, n_test=500)
    st = ResultStore(tmp_path / "t.sqlite")
    r = run_training(cfg, 1, store=st)
    assert len(r["per_class_f1"]) == 10 and sum(r["pred_hist"]) == 500
    if loss in ("min_ent", "mix_ent"):
        assert all(b > 0 for b in r["betas"])
    assert run_training(cfg, 1, store=st) == r  # stored: not retrained


def test_train_cli(tmp_path, fmnist_test):
    res = CliRunner().invoke(app, ["train", "--task", "semi", "--losses", "entmin,entmin_adadem", "--seeds", "1",
                                   "--steps", "3", "--labels-per-class", "2", "--n-test", "300", "--store", str(tmp_path / "s.sqlite"),
                                   "--out", str(tmp_path / "o"), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert "entmin_adadem" in res.output and (tmp_path / "o" / "semi_per_class_f1_labels_per_class2.png").exists()
    ckpts = sorted((tmp_path / "o" / "checkpoints").glob("*.pt"))
    assert [p.name.split("-")[1] for p in ckpts] == ["entmin", "entmin_adadem"]
    from entmin.models.small import build_model

    model = build_model("cnn")
    model.load_state_dict(torch.load(ckpts[0], weights_only=True))  # a loadable, complete state dict
    # the same store feeds `entmin report`, like the benchmark's
    rep = CliRunner().invoke(app, ["report", "--store", str(tmp_path / "s.sqlite"), "--out", str(tmp_path / "rep")])
    assert rep.exit_code == 0, rep.output
    assert "entmin_adadem" in (tmp_path / "rep" / "train_semi_table.md").read_text()
