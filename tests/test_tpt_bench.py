"""The CLIP-style validation model, CoOp and the TPT benchmark: the committed model is what its metadata says,
the text tower is causal, CoOp learns only the context, TPT(CoOp) starts at CoOp, blocks resume bit-exactly,
records are keyed by weights and data, and the CLI refuses bad requests in one line."""
import json

import pytest
import torch
import torch.nn.functional as F
from test_provenance import fake_fmnist
from typer.testing import CliRunner

from entmin.bench.store import ResultStore
from entmin.cli import app
from entmin.data.cache import FMNISTC
from entmin.tpt import PromptLearner
from entmin.tpt.augment import batch_crops
from entmin.tpt.bench import TPT_RECORD, TPTConfig, run_tpt
from entmin.tpt.clip import class_text_features
from entmin.tpt.coop import few_shot_indices, train_coop
from entmin.tpt.mini_clip import CLASSNAMES, ENSEMBLE_TEMPLATES, MiniCLIP, build_vocabulary
from entmin.tpt.mini_clip_train import load_mini_clip, zero_shot_accuracy
from entmin.tpt.report import tpt_table_markdown


@pytest.fixture
def clip():
    torch.manual_seed(0)
    return MiniCLIP(build_vocabulary(), dim=16, width=4, layers=1, heads=2).eval()


def test_the_tokenizer_pads_with_zero_marks_unknown_words_and_refuses_long_texts(clip):
    tok = clip.tokenize(["a photo of a zebra."])
    words = clip.vocabulary
    assert tok[0, 0] == 1 and words[int(tok[0, 5])] == "<unk>" and words[int(tok[0, 7])] == "<eos>"
    assert int((tok[0] > 0).sum()) == 8 and (tok[0, 8:] == 0).all()
    with pytest.raises(ValueError, match="context holds"):
        clip.tokenize(["a " * 30])


def test_the_text_tower_is_causal_and_pools_at_the_end_of_text(clip):
    tok = clip.tokenize(["a photo of a coat."])
    noisy = tok.clone()
    noisy[0, 8:] = torch.randint(4, len(clip.vocabulary), (tok.shape[1] - 8,))   # words after <eos>
    assert torch.allclose(clip.encode_text(tok), clip.encode_text(noisy), atol=1e-6)
    other = clip.tokenize(["a photo of a bag."])
    assert not torch.allclose(clip.encode_text(tok), clip.encode_text(other), atol=1e-4)


def test_prompt_learner_on_mini_clip_starts_at_the_zero_shot_classifier(clip):
    prompt = PromptLearner(clip, list(CLASSNAMES))
    assert prompt.n_ctx == 4
    assert torch.allclose(prompt(), class_text_features(clip, list(CLASSNAMES)), atol=1e-6)


def test_the_ensemble_is_the_renormalised_mean_of_its_templates(clip):
    per = [class_text_features(clip, ["coat"], (t,))[0] for t in ENSEMBLE_TEMPLATES]
    ref = F.normalize(torch.stack(per).mean(0), dim=-1)
    assert torch.allclose(class_text_features(clip, ["coat"], ENSEMBLE_TEMPLATES)[0], ref, atol=1e-6)


def test_batch_crops_are_crops_with_flips_and_reproducible():
    ramp = torch.linspace(0, 1, 32).expand(6, 1, 32, 32).contiguous()           # value = x coordinate
    a = batch_crops(ramp, torch.Generator().manual_seed(3), 0.3)
    b = batch_crops(ramp, torch.Generator().manual_seed(3), 0.3)
    assert torch.equal(a, b)
    row = a[:, 0, 16, 4:-4]
    steps = row.diff(dim=1)
    assert ((steps >= -1e-6).all(1) | (steps <= 1e-6).all(1)).all()             # monotone: a crop, maybe flipped
    assert (row.max(1).values - row.min(1).values < 0.99).all()                 # zoomed in: not the whole ramp
    assert ((steps < 0).any(1)).any() and ((steps > 0).any(1)).any()             # both orientations occur


def test_few_shot_indices_take_exactly_k_per_class_and_refuse_too_few():
    y = torch.arange(10).repeat_interleave(20)
    idx = few_shot_indices(y, 16, seed=1)
    assert len(idx) == 160 and len(set(idx.tolist())) == 160
    assert torch.equal(y[idx].bincount(), torch.full((10,), 16))
    with pytest.raises(ValueError, match="fewer than 21"):
        few_shot_indices(y, 21)


def test_coop_learns_only_the_context_and_lowers_the_loss_on_its_shots(fmnist_test):
    clip, _ = load_mini_clip()
    idx = few_shot_indices(fmnist_test[1], 4, seed=0)
    x, y = fmnist_test[0][idx], fmnist_test[1][idx]
    before = {k: v.clone() for k, v in clip.state_dict().items()}
    prompt = PromptLearner(clip, list(CLASSNAMES))
    feats = F.normalize(clip.encode_image(x), dim=-1).detach()

    def loss(text):
        return F.cross_entropy(clip.logit_scale().detach() * feats @ text.t(), y).item()
    start = loss(prompt().detach())
    ctx = train_coop(clip, list(CLASSNAMES), x, y, steps=30, lr=5e-2, crop_scale=1.0)
    prompt.set_context(ctx)
    assert loss(prompt().detach()) < start - 0.05
    assert all(torch.equal(before[k], v) for k, v in clip.state_dict().items())
    prompt.ctx.data.add_(1.0)
    prompt.reset()
    assert torch.equal(prompt.ctx, ctx)                                         # reset returns to CoOp's context


@pytest.fixture(scope="module")
def small_data(tmp_path_factory, fmnist_test):
    from entmin.data.fashion_mnist import load_fashion_mnist

    d = tmp_path_factory.mktemp("tpt")
    x, y = load_fashion_mnist("test", as_uint8=True)
    return FMNISTC(fake_fmnist(d / "fm", x[:, 2:30, 2:30][:300].numpy(), y[:300].numpy()), d / "cache")


def _cfg(**kw):
    base = {"n_images": 6, "block": 3, "n_views": 4, "coop_shots": 4, "coop_steps": 5}
    return TPTConfig(**{**base, **kw})


def test_blocks_resume_bit_exactly_and_only_missing_blocks_run(clip, small_data, tmp_path):
    store = ResultStore(tmp_path / "s.sqlite")
    cfg = _cfg(method="tpt", objective="adadem", steps=2, lr=0.05)
    first = run_tpt(cfg, 1, ("clean", "contrast"), store, clip, list(CLASSNAMES), small_data)
    assert [r["n"] for r in first] == [3, 3, 3, 3]
    recs = store.get_records(TPT_RECORD)
    key = next(k for k in recs if k.endswith("/contrast/1"))
    with store.conn:                                                             # lose one block (a kill)
        store.conn.execute("DELETE FROM records WHERE kind = ? AND key = ?", (TPT_RECORD, key))
    seen = []
    again = run_tpt(cfg, 1, ("clean", "contrast"), store, clip, list(CLASSNAMES), small_data, progress=seen.append)
    assert [(r["split"], r["block"]) for r in seen] == [("contrast", 1)]
    assert [r["predictions"] for r in again] == [r["predictions"] for r in first]
    assert [r["confidences"] for r in again] == [r["confidences"] for r in first]   # bit-exact, not just argmax


def test_tpt_coop_with_zero_steps_predicts_as_coop_and_tpt_with_zero_steps_as_zero_shot(clip, small_data, tmp_path):
    store = ResultStore(tmp_path / "s.sqlite")

    def preds(**kw):
        return [p for r in run_tpt(_cfg(**kw), 0, ("clean",), store, clip, list(CLASSNAMES), small_data)
                for p in r["predictions"]]
    assert preds(method="tpt-coop", steps=0) == preds(method="coop")
    assert preds(method="tpt", steps=0) == preds(method="zero-shot")


def test_records_are_keyed_by_the_weights_and_the_data(clip, small_data, tmp_path):
    store = ResultStore(tmp_path / "s.sqlite")
    cfg = _cfg(method="zero-shot")
    a = run_tpt(cfg, 0, ("clean",), store, clip, list(CLASSNAMES), small_data)[0]["config_hash"]
    with torch.no_grad():
        clip.text_projection.weight.mul_(1.5)
    b = run_tpt(cfg, 0, ("clean",), store, clip, list(CLASSNAMES), small_data)[0]["config_hash"]
    assert a != b and len({r["config_hash"] for r in store.get_records(TPT_RECORD).values()}) == 2
    other = FMNISTC(small_data.data_dir, small_data.cache_dir, seed=1)           # other corruption pixels
    c = run_tpt(cfg, 0, ("clean",), store, clip, list(CLASSNAMES), other)[0]["config_hash"]
    assert c not in (a, b)
    assert _cfg(method="zero-shot", lr=0.5).hash == cfg.hash                     # irrelevant fields do not count
    assert _cfg(method="tpt", lr=0.5).hash != _cfg(method="tpt").hash


def test_config_refuses_what_it_cannot_mean():
    from entmin.errors import UsageError

    with pytest.raises(UsageError, match="unknown TPT method"):
        TPTConfig(method="tpt++")
    with pytest.raises(UsageError, match="dem needs tau and alpha"):
        TPTConfig(objective="dem")
    with pytest.raises(UsageError, match="only dem takes them"):
        TPTConfig(objective="em", tau=1.0, alpha=1.0)


def test_the_table_averages_complete_splits_over_seeds():
    def rec(h, method, seed, split, correct, label, objective="em"):
        return {"config_hash": h, "seed": seed, "split": split, "block": 0, "label": label, "n": 10,
                "correct": correct, "wall_seconds": 0.1, "config": {"method": method, "objective": objective,
                                                                    "steps": 1, "lr": 5e-3, "n_images": 10, "block": 10}}
    recs = {str(i): r for i, r in enumerate([
        rec("z", "zero-shot", 0, "clean", 8, "zero-shot"), rec("z", "zero-shot", 0, "fog", 4, "zero-shot"),
        rec("t", "tpt", 0, "clean", 9, "TPT"), rec("t", "tpt", 0, "fog", 6, "TPT"),
        rec("t", "tpt", 1, "clean", 7, "TPT"), rec("t", "tpt", 1, "fog", 6, "TPT"),
        rec("a", "tpt", 1, "clean", 8, "TPT+AdaDEM", "adadem"), rec("a", "tpt", 1, "fog", 8, "TPT+AdaDEM", "adadem"),
        rec("p", "tpt", 0, "clean", 1, "TPT+DEM", "dem"),                    # unfinished: fog missing
        *[{**rec("o", "tpt", 1, sp, 1, "TPT [images 10-20]"), "config": {**rec("o", "tpt", 1, sp, 1, "")["config"],
                                                                         "offset": 10}} for sp in ("clean", "fog")]])}
    md = tpt_table_markdown(recs)
    cells = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[1:-1]] for line in md.splitlines()
             if line.startswith("| ") and not line.startswith("| method")}
    assert cells["TPT"][3:6] == ["80.0", "60.0", "60.0 ± 0.0"]
    assert cells["TPT"][6] == "70.0 ± 5.0 (+10.0)" and cells["TPT"][7] == "–" and cells["TPT"][8] == "2"
    assert cells["TPT+AdaDEM"][7] == "+15.00 (n=1)"          # 80.0 vs TPT seed 1 (65.0): paired, not vs the mean
    assert "TPT+DEM" not in cells and "1 configuration(s) not shown" in md


def test_the_committed_model_is_what_its_metadata_says(fmnist_test):
    model, meta = load_mini_clip()
    assert meta["classnames"] == list(CLASSNAMES) and meta["vocabulary"] == build_vocabulary()
    x, y = fmnist_test
    acc = zero_shot_accuracy(model, x, y, ENSEMBLE_TEMPLATES[:1])
    assert acc == pytest.approx(meta["zero_shot_clean_accuracy"], abs=2e-4)
    assert acc > 0.8


def test_cli_refuses_bad_requests_in_one_line(tmp_path):
    runner = CliRunner()
    r = runner.invoke(app, ["tpt", "--methods", "tpt++"])
    assert r.exit_code == 2 and "tpt++" in r.output
    r = runner.invoke(app, ["tpt", "--weights", str(tmp_path / "none.pt")])
    assert r.exit_code == 1 and "no CLIP-style checkpoint" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["tpt", "--steps", "-1"])
    assert r.exit_code == 2 and "--steps" in r.output


def test_cli_runs_tpt_into_the_store_and_the_report_shows_it(tmp_path, fmnist_test):
    runner = CliRunner()
    store = tmp_path / "t.sqlite"
    args = ["tpt", "--methods", "zero-shot,tpt", "--objectives", "adadem", "--seeds", "0", "--splits", "clean",
            "--n-images", "4", "--block", "2", "--n-views", "3", "--store", str(store)]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    recs = ResultStore(store).get_records(TPT_RECORD)
    assert len(recs) == 4 and {r["label"] for r in recs.values()} == {"zero-shot", "TPT+AdaDEM"}
    r = runner.invoke(app, ["report", "--store", str(store), "--out", str(tmp_path / "rep")])
    assert r.exit_code == 0, r.output
    assert "TPT+AdaDEM" in (tmp_path / "rep" / "tpt_table.md").read_text()
    assert json.loads(json.dumps(next(iter(recs.values()))))["config"]["weights_sha256"]


def test_augmix_views_are_reproducible_mixtures_in_range():
    from entmin.tpt.augment import AUGMIX_OPS, augmix_views
    from entmin.tpt.tpt import random_resized_crops

    torch.manual_seed(0)
    img = torch.rand(1, 32, 32)
    a = augmix_views(img, 8, torch.Generator().manual_seed(5))
    b = augmix_views(img, 8, torch.Generator().manual_seed(5))
    assert a.shape == (8, 1, 32, 32) and torch.equal(a, b)
    assert a.min() >= 0 and a.max() <= 1
    crops = random_resized_crops(img, 8, torch.Generator().manual_seed(5))
    assert not torch.allclose(a, crops, atol=1e-3)                  # the chains are mixed in
    g = torch.Generator().manual_seed(0)
    for name, op in AUGMIX_OPS.items():
        out = op(img, g, 1)
        assert out.shape == img.shape and out.min() >= 0 and out.max() <= 1 + 1e-6, name


def test_augmix_operations_do_what_their_names_say():
    from entmin.tpt.augment import AUGMIX_OPS

    g = torch.Generator().manual_seed(0)
    ramp = torch.linspace(0.2, 0.6, 32 * 32).reshape(1, 32, 32)
    auto = AUGMIX_OPS["autocontrast"](ramp, g, 1)
    assert auto.min() == 0 and auto.max() == pytest.approx(1.0)
    assert len((AUGMIX_OPS["posterize"](ramp, g, 1) * 255).round().unique()) <= 16    # 4 bits at severity 1
    eq = AUGMIX_OPS["equalize"](ramp, g, 1)
    assert eq.max() == pytest.approx(1.0) and (eq.flatten().diff() >= -1e-6).all()     # monotone, stretched
    bright = torch.full((1, 4, 4), 0.99)
    assert torch.allclose(AUGMIX_OPS["solarize"](bright, g, 1), 1 - bright)            # above any threshold


def test_the_augmix_option_changes_the_key_but_not_the_default_keys():
    from entmin.tpt.bench import TPTConfig

    assert TPTConfig(method="tpt").hash == "ee1c5919011d1ab9"                 # stores written before the field
    assert TPTConfig(method="tpt", augment="augmix").hash != TPTConfig(method="tpt").hash
    assert TPTConfig(method="tpt", augment="augmix").label == "TPT [AugMix]"
    with pytest.raises(Exception, match="unknown augmentation"):
        TPTConfig(augment="cutout")


def test_an_offset_subset_is_disjoint_keyed_and_labelled(clip, small_data, tmp_path):
    from entmin.errors import UsageError

    store = ResultStore(tmp_path / "s.sqlite")
    test = run_tpt(_cfg(method="zero-shot"), 0, ("clean",), store, clip, list(CLASSNAMES), small_data)
    search = run_tpt(_cfg(method="zero-shot", offset=6), 0, ("clean",), store, clip, list(CLASSNAMES), small_data)
    a = {i for r in test for i in r["indices"]}
    b = {i for r in search for i in r["indices"]}
    assert len(a) == len(b) == 6 and not a & b
    assert search[0]["config_hash"] != test[0]["config_hash"]
    assert _cfg(method="tpt", offset=6).label == "TPT [images 6-12]"
    with pytest.raises(UsageError, match="offset"):
        _cfg(offset=-1)
