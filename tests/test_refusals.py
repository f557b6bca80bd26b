"""What entmin refuses, and how: each case runs the real command line and checks its one-line message and exit
code (2: the request is wrong; 1: data, files or machine). The README's table "What entmin refuses, and how" is
generated from CASES and checked here; `python tests/test_refusals.py` rewrites it after a change."""
import os
import re
import sqlite3
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from entmin.cli import app

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
START, END = "<!-- refusals:start -->", "<!-- refusals:end -->"


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def _toml(text):
    def setup(d):
        (d / "exp.toml").write_text(text)
    return setup


def _weights(kind):
    def setup(d):
        from entmin.models import load_source_model, save_checkpoint

        if kind == "vit+json":
            save_checkpoint(load_source_model("vit"), d / "vit.pt", {"arch": "vit", "num_classes": 10})
        elif kind == "vit":
            torch.save(load_source_model("vit").state_dict(), d / "vit.pt")
        elif kind == "empty":
            (d / "empty.pt").write_bytes(b"")
        elif kind == "evil":
            torch.save({"w": Evil()}, d / "evil.pt")
    return setup


def _store(kind):
    def setup(d):
        if kind == "corrupt":
            (d / "bad.sqlite").write_bytes(b"not a database, just bytes " * 200)
        else:
            with sqlite3.connect(d / "other.sqlite") as c:
                c.execute("CREATE TABLE users (name TEXT)")
    return setup


def _file(name):
    def setup(d):
        (d / name).write_text("a regular file")
    return setup


def _npy(d):
    import numpy as np

    np.save(d / "imgs.npy", np.zeros((4, 3, 28, 28), np.float32))


RUN = ["run", "--corruptions", "fog", "--n-per-domain", "32", "--store", "{d}/s.sqlite", "--cache-dir", "{d}/cache"]
# (what the user gives, command line, setup, environment, message excerpt, exit code)
CASES = [
    ("an unknown method", [*RUN, "--method", "tenet"], None, {}, "'tenet' is not one of", 2),
    ("severity 0 (clean images under a corruption's name)", [*RUN, "--severity", "0"], None, {},
     "must be 1 to 5", 2),
    ("a seed that is not a number", [*RUN, "--seeds", "a"], None, {}, "Invalid value for '--seeds'", 2),
    ("no seed at all", [*RUN, "--seeds", ""], None, {}, "empty list", 2),
    ("a seed beyond 2**63 - 1", [*RUN, "--seeds", str(2 ** 64)], None, {}, "seed must be an integer", 2),
    ("an unknown device", [*RUN, "--device", "tpu"], None, {}, "unknown device 'tpu'", 2),
    ("a negative thread count", [*RUN, "--threads", "-1"], None, {}, "--threads must be >= 1", 2),
    ('TOML `lr = "0.1"`', [*RUN, "--config", "{d}/exp.toml"], _toml('lr = "0.1"'), {},
     "'lr': must be a number (or unset), got the string '0.1'", 2),
    ('TOML `batch_size = "64"`', [*RUN, "--config", "{d}/exp.toml"], _toml('batch_size = "64"'), {},
     "'batch_size': must be an integer, got the string '64'", 2),
    ("TOML `n_per_domain = 64.5`", [*RUN, "--config", "{d}/exp.toml"], _toml("n_per_domain = 64.5"), {},
     "'n_per_domain': must be an integer (or unset), got 64.5 (float)", 2),
    ('TOML `severity = "5"`', [*RUN, "--config", "{d}/exp.toml"], _toml('severity = "5"'), {},
     "'severity': must be an integer, got the string '5'", 2),
    ('TOML `corruptions = "fog"`', [*RUN, "--config", "{d}/exp.toml"], _toml('corruptions = "fog"'), {},
     "write corruptions = ['fog']", 2),
    ("a TOML field that does not exist", [*RUN, "--config", "{d}/exp.toml"], _toml("learning_rate = 0.1"), {},
     "unknown config field(s) ['learning_rate']", 2),
    ("one weights file for two models", ["compare", "--models", "cnn,vit", "--weights", "mine.pt", "--store",
                                          "{d}/s.sqlite", "--out", "{d}/o"], None, {},
     "one --weights file for 2 models", 2),
    ("ViT weights (with their JSON) as `--model cnn`", [*RUN, "--model", "cnn", "--weights", "{d}/vit.pt"],
     _weights("vit+json"), {}, "are a 'vit' model (says vit.json) but --model cnn", 2),
    ("weights of another architecture", [*RUN, "--model", "cnn", "--weights", "{d}/vit.pt"], _weights("vit"), {},
     "does not fit the SmallCNN model: 30 missing", 2),
    ("a timm/torchvision model without weights", [*RUN, "--model", "timm:resnet18"], None, {},
     "needs weights", 2),
    ("ImageNet-C without its folder", [*RUN, "--dataset", "imagenetc"], None, {}, "needs --data-dir", 2),
    ("`dem*` before `entmin search`", ["compare", "--methods", "tent", "--objectives", "dem*", "--corruptions",
                                        "fog", "--store", "{d}/s.sqlite", "--out", "{d}/o"], None, {},
     "no DEM* parameters stored", 2),
    ("a severity list with a letter", ["corrupt", "--severities", "a", "--cache-dir", "{d}/c"], None, {},
     "Invalid value for '--severities'", 2),
    ("images of the wrong shape to estimate on", ["estimate", "--images", "{d}/imgs.npy"], _npy, {},
     "expected (N, 32, 32) or (N, 1, 32, 32) images", 2),
    ("an empty weights file", [*RUN, "--weights", "{d}/empty.pt"], _weights("empty"), {},
     "is empty (0 bytes)", 1),
    ("a weights file that would run code", [*RUN, "--weights", "{d}/evil.pt"], _weights("evil"), {},
     "refused: it contains Python objects other than tensors", 1),
    ("a weights file that is not there", [*RUN, "--weights", "{d}/nope.pt"], None, {},
     "weights file not found", 1),
    ("a data folder without Fashion-MNIST", [*RUN, "--data-dir", "{d}"], None, {},
     "no IDX dataset in", 1),
    ("an output folder under a regular file", ["compare", "--out", "{d}/file/out", "--store", "{d}/s.sqlite"],
     _file("file"), {}, "a file of that name (or of a parent) is in the way", 1),
    ("`$ENTMIN_CACHE` under a regular file", ["run", "--corruptions", "fog", "--store", "{d}/s.sqlite"], _file("f"),
     {"ENTMIN_CACHE": "{d}/f/cache"}, "cannot create the corruption cache folder", 1),
    ("`report` on a file that is not SQLite", ["report", "--store", "{d}/bad.sqlite", "--out", "{d}/o"],
     _store("corrupt"), {}, "is not a valid SQLite database", 1),
    ("`report` on another program's database", ["report", "--store", "{d}/other.sqlite", "--out", "{d}/o"],
     _store("foreign"), {}, "not an entmin results store (tables: ['users'])", 1),
    ("`report` on a store that does not exist", ["report", "--store", "{d}/none.sqlite"], None, {},
     "results store not found", 1),
]


def refusal_table() -> str:
    lines = [START, "", "| you give | entmin says (excerpt) | exit |", "|---|---|---|"]
    for what, *_, message, code in CASES:
        lines.append(f"| {what} | {message.replace('|', '/')} | {code} |")
    return "\n".join([*lines, "", END])


def _fmt(items, d):
    return [str(a).replace("{d}", str(d)) for a in items]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_refusal(case, tmp_path, monkeypatch, fmnist_test):
    _, args, setup, env, message, code = case
    if setup:
        setup(tmp_path)
    for k, v in env.items():
        monkeypatch.setenv(k, v.replace("{d}", str(tmp_path)))
    res = CliRunner().invoke(app, _fmt(args, tmp_path))
    out = re.sub(r"\s*[│╭╰─╮╯]+\s*", " ", res.output)  # click's boxed usage errors, unwrapped
    out = re.sub(r"\s+", " ", out)
    assert res.exit_code == code, res.output
    assert message in out, res.output
    assert "Traceback" not in res.output and "weights_only=False" not in res.output
    if not res.output.startswith("Usage"):
        assert len(res.output.strip().splitlines()) == 1, res.output  # one line, not a dump


def test_the_readme_table_is_generated_from_these_cases():
    text = README.read_text()
    assert START in text and END in text, "README lacks the refusal table"
    block = text[text.index(START):text.index(END) + len(END)]
    assert block == refusal_table(), "README refusal table is stale: run `python tests/test_refusals.py`"


if __name__ == "__main__":  # rewrite the README table from CASES
    text = README.read_text()
    if START in text:
        text = text[:text.index(START)] + refusal_table() + text[text.index(END) + len(END):]
    else:
        sys.exit("README has no refusal markers")
    README.write_text(text)
