"""Mutation check of the test suite: apply one deliberate bug at a time to the working tree, run the tests that
guard that code, expect them to fail, restore the file. Usage: python scripts/mutation_check.py [name filter...]
(from a clean checkout, with no other entmin job starting meanwhile: they would import the mutated code). The
first 28 were last run in full on the 2-core machine (28 of 28 caught); the 15 added on 2026-12-02 for the RL,
dense, segmentation, TPT and training-loss code, and the repaired 'no optimizer step' anchor, were run that day:
16 of 16 caught. The next 8 (imbalanced streams, TPT benchmark, MiniCLIP, idx data, batch 1, DenseLogits) were
added and run in session 6; the last 5 (ETA ablation switches, TOML tables through the grid, UDA maps and DEM
grid) in session 7. The next four (Ray GPUs, the device on the worker and its name, CIFAR-10-C memory) in session 9; the last six (the
fp16 loss scale across reset and export/import and its skipped steps, ETA's and SAR's running state through
export/import) in session 10."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# (name, file, original text, mutated text, tests that must fail)
M = [
 ("no optimizer step", "src/entmin/adapt/base.py", "            loss.backward()\n            self.optimizer.step()", "            loss.backward()", "tests/test_accuracy.py -k 'vit and tent' tests/test_update_rules.py -k tent"),
 ("ETA weight sign", "src/entmin/adapt/eata.py", "weight = torch.exp(-(ent - self.e_margin))", "weight = torch.exp((ent - self.e_margin))", "tests/test_update_rules.py -k eta"),
 ("EATA Fisher not averaged", "src/entmin/adapt/eata.py", "return {n: f / n_batches for n, f in fisher.items()}", "return {n: f for n, f in fisher.items()}", "tests/test_update_rules.py -k eata"),
 ("SAR rho doubled", "src/entmin/adapt/sar.py", "scale = self.rho / (norm + 1e-12)", "scale = 2 * self.rho / (norm + 1e-12)", "tests/test_update_rules.py -k sar"),
 ("SAR EMA momentum", "src/entmin/adapt/sar.py", "self.ema_momentum * self.ema + (1 - self.ema_momentum) * ent_value", "0.5 * self.ema + 0.5 * ent_value", "tests/test_update_rules.py -k recovery"),
 ("SAR second filter dropped", "src/entmin/adapt/sar.py", "s2 = s1 & (ent2 < self.e_margin)", "s2 = s1", "tests/test_update_rules.py -k sar"),
 ("DeYO PLPD sign", "src/entmin/adapt/deyo.py", "plpd_s1 = (probs.gather(1, yhat) - probs_prime.gather(1, yhat))", "plpd_s1 = (probs_prime.gather(1, yhat) - probs.gather(1, yhat))", "tests/test_update_rules.py -k deyo"),
 ("DeYO PLPD weight", "src/entmin/adapt/deyo.py", "weight = weight + torch.exp(plpd)", "weight = weight + torch.exp(-plpd)", "tests/test_update_rules.py -k deyo"),
 ("AdaDEM bank after loss", "src/entmin/objectives/adadem.py", "            if update and self.variant != \"norm\":\n                self._update(p, k, bank_mask)\n", "", "tests/test_update_rules.py -k adadem"),
 ("no rollback", "src/entmin/adapt/base.py", "            self._restore_running_state(saved)\n", "", "tests/test_adapt.py -k partial_state"),
 ("no enable_grad", "src/entmin/adapt/base.py", "with torch.inference_mode(False), torch.enable_grad():", "if True:", "tests/test_adapt.py -k outer_no_grad"),
 ("SAR perturbation not undone on failure", "src/entmin/adapt/sar.py", "        finally:  # back to theta", "        except ValueError:  # back to theta", "tests/test_adapt.py -k partial_state"),
 ("provenance ignored", "src/entmin/bench/provenance.py", "    out = {}\n    for key, value in cfg.provenance:", "    out = {}\n    for key, value in ():", "tests/test_provenance.py -k weights_replaced"),
 ("cache not keyed by data", "src/entmin/data/cache.py", "f\"{self.fingerprint[:16]}-{corruption_code()}-seed{self.seed}\"", "f\"{corruption_code()}-seed{self.seed}\"", "tests/test_provenance.py -k cache_is_keyed"),
 ("label count not checked", "src/entmin/data/cache.py", "if arr.ndim != 3 or arr.shape[0] != len(labels):", "if arr.ndim != 3:", "tests/test_provenance.py -k does_not_match"),
 ("partial seeds averaged", "src/entmin/bench/tables.py", "per_seed_domain = {s: _domain_accuracy(cs) for s, cs in complete.items()}", "per_seed_domain = {s: _domain_accuracy(cs) for s, cs in by_seed.items()}", "tests/test_provenance.py -k finished_seeds"),
 ("unmatched delta", "src/entmin/bench/tables.py", "    common = sorted(set(e[\"seed_means\"]) & set(base[\"seed_means\"]))", "    common = sorted(set(e[\"seed_means\"]) | set(base[\"seed_means\"]))\n    return f\"{100 * (e['mean'] - base['mean']):+.1f}\"", "tests/test_provenance.py -k finished_seeds"),
 ("umask ignored", "src/entmin/utils.py", "        os.chmod(tmp, 0o666 & ~_umask())\n", "", "tests/test_robustness.py -k umask"),
 ("workers outlive parent", "src/entmin/data/cache.py", "initializer=_worker_init,", "initializer=torch.set_num_threads,", "tests/test_robustness.py -k die_with"),
 ("report opens writable", "src/entmin/cli/bench.py", "st = ResultStore(store, readonly=True)", "st = ResultStore(store)", "tests/test_robustness.py -k without_touching"),
 ("metadata swaps model", "src/entmin/models/zoo.py", "        if arch != name:", "        if False:", "tests/test_provenance.py -k sibling"),
 ("uint8 accepted", "src/entmin/_validate.py", "    if not x.is_floating_point():", "    if False:", "tests/test_provenance.py -k integer"),
 ("store keyed by domain", "src/entmin/bench/store.py", "    PRIMARY KEY (config_hash, seed, position));\nCREATE TABLE IF NOT EXISTS records", "    PRIMARY KEY (config_hash, seed, domain));\nCREATE TABLE IF NOT EXISTS records", "tests/test_provenance.py -k visited_twice"),
 ("bank in float32", "src/entmin/objectives/adadem.py", "bank = self.bank.to(torch.promote_types(self.bank.dtype, p.dtype), copy=True)", "bank = self.bank.clone()", "tests/test_robustness.py -k precision"),
 ("disk full unmapped", "src/entmin/bench/store.py", "            if \"full\" in msg:", "            if False:", "tests/test_robustness.py -k full_disk"),
 ("temp file kept", "src/entmin/utils.py", "        with contextlib.suppress(OSError):\n            os.unlink(tmp)\n", "", "tests/test_robustness.py -k resume_state"),
 ("train-source into package", "src/entmin/cli/training.py", "path = out or Path(\"results/source\") / f\"fmnist_{recipe.model}.pt\"", "path = out or Path(__import__('entmin').models.checkpoints.CHECKPOINT_DIR) / f\"fmnist_{recipe.model}.pt\"", "tests/test_robustness.py -k into_the_package"),
 ("flags lose to config", "src/entmin/cli/bench.py", "            if k not in given:", "            if True:", "tests/test_robustness.py -k explicit_flags"),
 ("RL bonus sign", "src/entmin/rl/policy.py", "return values, log_prob, self.objective(dist.distribution.logits)", "return values, log_prob, -self.objective(dist.distribution.logits)", "tests/test_rl.py -k maximises"),
 ("RL Adam eps not SB3's", "src/entmin/rl/runner.py", "\"optimizer_kwargs\": {\"fused\": True, \"eps\": 1e-5}}", "\"optimizer_kwargs\": {\"fused\": True}}", "tests/test_rl.py -k exactly_like"),
 ("RL bypass guard off", "src/entmin/rl/policy.py", "        if policy.objective_calls == before:", "        if False:", "tests/test_rl.py -k bypasses"),
 ("RL resume without boundary reset", "src/entmin/rl/runner.py", "        resumed_from = model.num_timesteps\n        _reset_at_boundary(model, seed)", "        resumed_from = model.num_timesteps", "tests/test_rl.py -k sigkill"),
 ("RL evaluation draws from the training RNG", "src/entmin/rl/runner.py", "torch.multinomial(probs, 1, generator=gen)", "torch.multinomial(probs, 1)", "tests/test_rl.py -k random_streams"),
 ("dense AdaDEM mixes pixels", "src/entmin/objectives/adadem.py", "return logits.movedim(1, -1).reshape(-1, logits.shape[1]), mask", "return logits.reshape(-1, logits.shape[1]), mask", "tests/test_dense.py"),
 ("masked mean ignores the mask", "src/entmin/objectives/__init__.py", "    return torch.where(mask, loss,", "    return loss.mean() + 0 * torch.where(mask, loss,", "tests/test_dense.py -k invalid"),
 ("seg stream resumes from scratch", "src/entmin/seg/tta.py", "        adapter.import_state(saved[1])", "        pass", "tests/test_seg.py -k resumes"),
 ("stream resumes without the adapter state", "src/entmin/bench/runner.py", "            adapter.import_state(resumed[1])", "            pass", "tests/test_bench.py -k 'sigkill and gradual'"),
 ("seg labels off the ink", "src/entmin/seg/scenes.py", "            patch_y[ink] = int(labels[j])", "            patch_y[g >= 0] = int(labels[j])", "tests/test_seg.py -k names_its_pixel"),
 ("IoU union double-counts", "src/entmin/seg/metrics.py", "union = self.cm.sum(0).double() + self.cm.sum(1).double() - tp", "union = self.cm.sum(0).double() + self.cm.sum(1).double()", "tests/test_seg.py -k looped"),
 ("TPT averages log-probabilities", "src/entmin/tpt/tpt.py", "avg_logp = torch.logsumexp(logp, 0) - math.log(len(sel))", "avg_logp = logp.mean(0)", "tests/test_tpt.py -k averaged"),
 ("TPT episode not reset", "src/entmin/tpt/tpt.py", "        self.reset()\n        opt", "        opt", "tests/test_tpt.py -k scratch"),
 ("UDA resume loses the data stream", "src/entmin/seg/uda.py", "        g.set_state(st[\"generator\"])", "        pass", "tests/test_seg.py -k uda_resumes"),
 ("AdvEnt adversarial term off", "src/entmin/seg/uda.py", "            loss = loss + cfg.lambda_adv * _bce(", "            loss = loss + 0 * _bce(", "tests/test_seg.py -k really_act"),
 ("training loss weight", "src/entmin/training/losses.py", "return super().forward(out) + self.unsup_weight * self.adadem(out.weak).mean()", "return super().forward(out) + 1.01 * self.unsup_weight * self.adadem(out.weak).mean()", "tests/test_training.py -k pinned"),
 ("imbalanced ignores the ratio", "src/entmin/bench/streams.py", "w = np.array([ratio if c == current else 1.0 for c in left])", "w = np.array([1.0 for c in left])", "tests/test_streams.py -k imbalanced_order"),
 ("TPT bench draws views from the run order", "src/entmin/tpt/bench.py", "            self.tpt.generator.manual_seed(self.seed * 1_000_003 + i)\n", "", "tests/test_tpt_bench.py -k resume"),
 ("MiniCLIP text tower not causal", "src/entmin/tpt/mini_clip.py", "mask=self.attn_mask, is_causal=True)", ")", "tests/test_tpt_bench.py -k causal"),
 ("TPT key ignores the weights", "src/entmin/tpt/bench.py", "cfg = replace(cfg, weights_sha256=state_dict_sha256(clip.state_dict()),", "cfg = replace(cfg, weights_sha256=\"\",", "tests/test_tpt_bench.py -k keyed"),
 ("TPT(CoOp) starts from the words", "src/entmin/tpt/tpt.py", "            self.prompt.set_context(context)", "            pass", "tests/test_tpt_bench.py -k zero_steps"),
 ("idx classes from the table", "src/entmin/bench/runner.py", "        if self.dataset == \"idx\":\n            return int(self.fmnistc.labels().max()) + 1\n", "", "tests/test_robustness.py -k idx_dataset"),
 ("batch 1 merged", "src/entmin/bench/streams.py", "    if batch_size > 1 and len(bounds) > 1", "    if len(bounds) > 1", "tests/test_streams.py -k batch_size_one"),
 ("DenseLogits keeps the dict", "src/entmin/seg/model.py", "        if isinstance(out, dict):\n            out = out[self.key]", "        if False:\n            out = out[self.key]", "tests/test_seg.py -k torchvision"),
 ("ETA reweight switch ignored", "src/entmin/adapt/eata.py", "if self.use_reweight else torch.ones_like(ent)", "if True else torch.ones_like(ent)", "tests/test_update_rules.py -k ablation_switches"),
 ("ETA select switch ignored", "src/entmin/adapt/eata.py", "        if not self.use_selection:\n            final = torch.ones_like(reliable)\n        elif", "        if", "tests/test_update_rules.py -k ablation_switches"),
 ("grid bypasses from_dict", "src/entmin/bench/grid.py", "cfg = RunConfig.from_dict({**base,", "cfg = RunConfig(**{**base,", "tests/test_robustness.py -k tables_reach"),
 ("UDA maps in train mode", "src/entmin/seg/report.py", "return pack_uint8(model.eval()(images[:MAP_SCENES]).argmax(1))", "return pack_uint8(model.train()(images[:MAP_SCENES]).argmax(1))", "tests/test_seg.py -k uda_cli"),
 ("UDA dem options dropped", "src/entmin/seg/uda.py", "**dict(cfg.objective_options)) if use_obj else None", ") if use_obj else None", "tests/test_seg.py -k dem_grid"),
 ("Ray tasks never ask for a GPU", "src/entmin/cli/bench.py", "        return {\"data_dir\": data_dir, \"cache_dir\": cache_dir, \"device\": device}", "        return {\"data_dir\": data_dir, \"cache_dir\": cache_dir, \"device\": \"cpu\" if device == \"auto\" else device}", "tests/test_ray.py -k ray_cluster"),
 ("CIFAR-10-C split copied whole", "src/entmin/bench/sources.py", "            d = Cifar10CDomain(self.data_dir, corruption, severity)", "            from ..data.formats import load_cifar10c; d = TensorDomain(*load_cifar10c(self.data_dir, corruption, severity))", "tests/test_data.py -k cifar10c_streams"),
 ("'auto' not resolved where the run executes", "src/entmin/bench/runner.py", "    device = resolve_device(device)", "    device = torch.device(device)", "tests/test_ray.py -k ray_cluster"),
 ("device name not checked before Ray", "src/entmin/cli/bench.py", "        if device != \"auto\":\n            parse_device(device)  # a typo fails here, before anything is sent\n", "", "tests/test_ray.py -k device_name"),
 ("fp16 scale kept across reset", "src/entmin/adapt/base.py", "        if self.scaler is not None:\n            self.scaler.load_state_dict(snap[\"scaler\"])\n", "", "tests/test_adapt.py -k fp16_loss"),
 ("fp16 scale not imported", "src/entmin/adapt/base.py", "            self.scaler.load_state_dict(state[\"scaler\"])", "            pass", "tests/test_adapt.py -k fp16_loss"),
 ("ETA moving mean not imported", "src/entmin/adapt/eata.py", "        self.mean_probs = state[\"mean_probs\"]", "        self.mean_probs = None", "tests/test_adapt.py -k export_import"),
 ("fp16 skipped step not reported", "src/entmin/adapt/base.py", "\"update_skipped\": self.scaler.get_scale() < scale", "\"update_skipped\": False", "tests/test_adapt.py -k fp16_loss tests/test_bench.py -k fp16"),
 ("fp16 skipped steps not counted", "src/entmin/bench/runner.py", "        skipped += int(bool(diag.get(\"update_skipped\", False)))\n", "", "tests/test_bench.py -k fp16"),
 ("SAR EMA not imported", "src/entmin/adapt/sar.py", "        self.ema = None if state[\"ema\"] is None else float(state[\"ema\"])", "        self.ema = None", "tests/test_adapt.py -k export_import"),
]

def main(selected: list[str]) -> int:
    missed = 0
    for name, f, old, new, tests in M:
        if selected and not any(s in name for s in selected):
            continue
        path = ROOT / f
        src = path.read_text()
        assert old in src, (name, old)
        path.write_text(src.replace(old, new, 1))
        try:
            r = subprocess.run(f"timeout 600 {sys.executable} -m pytest -q -x -p no:cacheprovider {tests}",
                               shell=True, capture_output=True, text=True, cwd=ROOT, check=False)
            last = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else r.stderr[-200:]
            missed += r.returncode == 0
            print(f"{'CAUGHT' if r.returncode else 'MISSED'}  {name}: {last}", flush=True)
        finally:
            path.write_text(src)
            # a mutation may write where it must not (the committed checkpoints): put those back too
            subprocess.run(["git", "checkout", "--", "src/entmin/models/checkpoints"], cwd=ROOT, check=False)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
