"""entmin.rl: PPO whose entropy bonus is an entmin objective (the paper's MiniGrid row).

The entropy term against SB3's own and against AdaDEM's closed form, the sign of the bonus through a real
``PPO.train`` step, the guard against SB3 bypassing the objective, exact resume after SIGKILL, determinism,
the zoo settings against rl_zoo3's YAML, and the command's errors.
"""
import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("stable_baselines3")
pytest.importorskip("minigrid")

from typer.testing import CliRunner

from entmin.bench.store import ResultStore
from entmin.cli import app
from entmin.objectives import AdaDEM
from entmin.rl.policy import ObjectivePolicy, ObjectivePPO
from entmin.rl.runner import RECORD_KIND, evaluate_policy, make_model, run_cell
from entmin.rl.settings import MINIGRID_ENVS, RLConfig, resolve_env, zoo_settings

DOORKEY = "MiniGrid-DoorKey-5x5-v0"
ROOT = Path(__file__).resolve().parents[1]


def _tiny(objective="em", **kw):
    kw.setdefault("max_timesteps", 2048)
    kw.setdefault("evals", 2)
    return RLConfig.from_zoo("DoorKey-5x5", objective, **kw)


def _obs(model, n=32, seed=0):
    g = np.random.default_rng(seed)
    return torch.as_tensor(g.normal(size=(n, *model.observation_space.shape)), dtype=torch.float32)


def test_em_is_sb3s_own_entropy_in_value_and_gradient():
    torch.manual_seed(0)
    model = make_model(_tiny("em"), 0)
    pol = model.policy
    obs, actions = _obs(model), torch.randint(0, 7, (32,))
    _, _, ours = pol.evaluate_actions(obs, actions)
    dist = pol.get_distribution(obs)
    theirs = dist.entropy()
    assert torch.allclose(ours, theirs, atol=1e-6, rtol=0)
    g1 = torch.autograd.grad(ours.mean(), pol.action_net.weight)[0]
    g2 = torch.autograd.grad(theirs.mean(), pol.action_net.weight)[0]
    assert torch.allclose(g1, g2, atol=1e-6, rtol=0)


def test_adadem_gradient_wrt_the_action_logits_is_adadems_closed_form():
    model = make_model(_tiny("adadem"), 0)
    pol = model.policy
    obs = _obs(model)
    # the raw action logits, and AdaDEM's closed form on them with the bank the policy will use
    feats = pol.extract_features(obs, pol.pi_features_extractor)
    raw = pol.action_net(pol.mlp_extractor.forward_actor(feats)).detach().requires_grad_(True)
    ref = AdaDEM(7)
    ref.load_state_dict(pol.objective.state_dict())
    p = torch.softmax(raw.detach(), 1)
    ref.update_bank(raw.detach())
    a = ref.bank[p.argmax(1)]
    t = -(p * raw.detach()).sum(1, keepdim=True)
    reward = p * (raw.detach() + t + 1)
    closed = (a - reward) / reward.abs().sum(1, keepdim=True)   # d L_n / d z (dem_spec.md 1.6)
    # the policy's objective on the distribution's (log-softmax) logits, differentiated back to the raw logits
    _, _, val = pol.evaluate_actions(obs, torch.zeros(32, dtype=torch.long))
    dist_logits = pol._last_dist.distribution.logits
    (g,) = torch.autograd.grad(val.sum(), dist_logits)
    jac = torch.eye(7) - torch.softmax(raw.detach(), 1).unsqueeze(1)  # d log_softmax / d z, rows n
    g_raw = torch.einsum("nj,nji->ni", g, jac)
    assert torch.allclose(g_raw, closed, atol=1e-6)
    assert torch.allclose(pol.objective.bank, ref.bank)   # the bank over actions was updated once


@pytest.mark.parametrize("objective", ["em", "adadem"])
def test_the_bonus_maximises_the_objective_through_a_real_train_step(objective):
    """Zero advantages, no value loss, plain SGD, one full-batch epoch: PPO.train's only gradient is the bonus,
    so the action head moves by +lr * ent_coef * grad mean(objective) (ascent, i.e. the loss subtracts it)."""
    cfg = _tiny(objective)
    model = make_model(cfg, 0)
    model.vf_coef, model.n_epochs, model.batch_size, model.max_grad_norm = 0.0, 1, 1024, 1e9
    model.normalize_advantage = False
    model.ent_coef = 0.5
    lr = 0.1
    model.policy.optimizer = torch.optim.SGD(model.policy.parameters(), lr=lr)
    model.lr_schedule = lambda _: lr
    from stable_baselines3.common.logger import configure
    model.set_logger(configure(None, []))
    buf = model.rollout_buffer
    buf.reset()
    obs = _obs(model, n=buf.buffer_size * buf.n_envs).numpy().reshape(buf.buffer_size, buf.n_envs, -1)
    buf.observations[:] = obs
    buf.actions[:] = np.random.default_rng(0).integers(0, 7, size=buf.actions.shape)
    with torch.no_grad():
        _, logp, _ = model.policy.evaluate_actions(torch.as_tensor(obs.reshape(-1, obs.shape[-1])),
                                                  torch.as_tensor(buf.actions.reshape(-1)))
    buf.log_probs[:] = logp.numpy().reshape(buf.log_probs.shape)
    buf.advantages[:] = 0.0
    buf.returns[:] = 0.0
    buf.values[:] = 0.0
    buf.full = True
    # expected step, from a copy of the policy in its pre-train state
    import copy
    shadow = copy.deepcopy(model.policy)
    flat = torch.as_tensor(buf.observations.reshape(-1, obs.shape[-1]))
    # the objective itself on the action logits, not through evaluate_actions (whose sign is under test)
    val = shadow.objective(shadow.get_distribution(flat).distribution.logits)
    g = torch.autograd.grad(val.mean(), shadow.action_net.weight)[0]
    before = model.policy.action_net.weight.detach().clone()
    model.train()
    delta = model.policy.action_net.weight.detach() - before
    assert g.abs().max() > 0
    assert torch.allclose(delta, lr * model.ent_coef * g, atol=1e-6, rtol=1e-4)


def test_an_sb3_change_that_bypasses_the_objective_fails_loudly(monkeypatch):
    from stable_baselines3.common.policies import ActorCriticPolicy
    model = make_model(_tiny("adadem"), 0)
    monkeypatch.setattr(ObjectivePolicy, "evaluate_actions", ActorCriticPolicy.evaluate_actions)
    with pytest.raises(RuntimeError, match="bypassed"):
        model.learn(1024)


def test_continuous_action_spaces_are_refused():
    from gymnasium import spaces
    with pytest.raises(ValueError, match="discrete action space"):
        ObjectivePolicy(spaces.Box(-1, 1, (3,)), spaces.Box(-1, 1, (2,)), lambda _: 1e-3)
    assert issubclass(ObjectivePPO, __import__("stable_baselines3").PPO)


def test_zoo_settings_match_rl_zoo3s_yaml():
    spec = importlib.util.find_spec("rl_zoo3")  # located, not imported: its imports need a video stack
    if spec is None:
        pytest.skip("rl_zoo3 not installed (bash scripts/setup.sh --rl installs it with --no-deps)")
    yaml = pytest.importorskip("yaml")
    zoo = yaml.safe_load((Path(spec.submodule_search_locations[0]) / "hyperparams" / "ppo.yml").read_text())
    keys = ("n_envs", "n_steps", "batch_size", "gae_lambda", "gamma", "n_epochs", "learning_rate", "clip_range",
            "normalize", "n_timesteps")
    for env in MINIGRID_ENVS:
        ours, theirs = zoo_settings(env), zoo[env]
        assert {k: ours[k] for k in keys} == {k: theirs[k] for k in keys}, env
        assert theirs["env_wrapper"] == "minigrid.wrappers.FlatObsWrapper" and theirs["policy"] == "MlpPolicy"


def test_budgets_scale_and_round_to_whole_rollouts():
    cfg = RLConfig.from_zoo("RedBlueDoors-6x6", "em")
    assert cfg.n_steps == 512 and cfg.timesteps % 4096 == 0 and abs(cfg.timesteps - 1e6) <= 2048
    small = RLConfig.from_zoo("FourRooms", "em", max_timesteps=100_000)
    assert small.timesteps == 98_304 and small.eval_every % small.rollout == 0
    assert RLConfig.from_zoo("Unlock", "em", timesteps_scale=0.5).timesteps == 50_176
    assert resolve_env("doorkey-5x5") == DOORKEY and resolve_env("MiniGrid-Unlock-v0") == "MiniGrid-Unlock-v0"
    # everything that decides a run is in the key
    base = _tiny("adadem")
    for other in (_tiny("em"), _tiny("adadem", ent_coef=0.01), _tiny("adadem", max_timesteps=4096),
                  _tiny("adadem", evals=1)):
        assert other.hash() != base.hash()
    assert _tiny("adadem").hash() == base.hash()


def test_same_seed_same_run_and_report(tmp_path):
    cfg = _tiny("adadem")
    a = run_cell(cfg, 5, ResultStore(tmp_path / "a.sqlite"))
    b = run_cell(cfg, 5, ResultStore(tmp_path / "b.sqlite"))
    c = run_cell(cfg, 6, ResultStore(tmp_path / "b.sqlite"))
    assert a["policy_sha256"] == b["policy_sha256"] and a["curve"] == b["curve"]
    assert c["policy_sha256"] != a["policy_sha256"]
    assert [p["timesteps"] for p in a["curve"]] == [1024, 2048] and len(a["curve"][0]["returns"]) == 10
    assert len(a["curve"][1]["returns_stochastic"]) == 10
    res = CliRunner().invoke(app, ["report", "--store", str(tmp_path / "b.sqlite"), "--out", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    table = (tmp_path / "r" / "rl_table.md").read_text()
    assert "DoorKey-5x5" in table and "(n=2)" in table
    assert (tmp_path / "r" / "rl_curves.png").read_bytes()[:4] == b"\x89PNG"


def test_a_run_without_vecnormalize_is_its_own_row(tmp_path):
    """--no-normalize (a stated deviation from the zoo) trains without VecNormalize and is reported in a row of its
    own, never averaged into the zoo setting's row."""
    st = tmp_path / "n.sqlite"
    res = CliRunner().invoke(app, ["rl", "--envs", "DoorKey-5x5", "--objectives", "em", "--seeds", "0",
                                   "--max-timesteps", "1024", "--evals", "1", "--no-normalize", "--store", str(st)])
    assert res.exit_code == 0, res.output
    off = _tiny("em", max_timesteps=1024, evals=1, normalize=False)
    assert make_model(off, 0).get_vec_normalize_env() is None
    assert make_model(_tiny("em"), 0).get_vec_normalize_env() is not None
    run_cell(_tiny("em", max_timesteps=1024, evals=1), 0, ResultStore(st))
    res = CliRunner().invoke(app, ["report", "--store", str(st), "--out", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    rows = [r for r in (tmp_path / "r" / "rl_table.md").read_text().splitlines() if r.startswith("| DoorKey")]
    assert [r.split(" | ")[0] for r in rows] == ["| DoorKey-5x5", "| DoorKey-5x5 (no VecNormalize)"]
    assert all("(n=1)" in r for r in rows)


def test_evaluation_never_moves_the_training_random_streams():
    cfg = _tiny("em")
    model = make_model(cfg, 0)
    state = torch.get_rng_state()
    sampled = evaluate_policy(model, cfg, 3, deterministic=False)
    assert torch.equal(torch.get_rng_state(), state)
    assert sampled == evaluate_policy(model, cfg, 3, deterministic=False)  # its own fixed generator


def _cli(store, *extra):
    return [sys.executable, "-m", "entmin.cli", "rl", "--envs", "DoorKey-5x5", "--objectives", "adadem",
            "--seeds", "0", "--max-timesteps", "6144", "--evals", "6", "--checkpoint-every", "1024",
            "--store", str(store), *extra]


def test_a_cell_killed_with_sigkill_resumes_bit_exactly(tmp_path):
    store = tmp_path / "rl.sqlite"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(_cli(store), cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    resume = tmp_path / "rl-resume"
    deadline = time.time() + 240
    while not (resume.is_dir() and any(resume.glob("*.pt"))):
        assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
        assert time.time() < deadline, "no checkpoint written"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not ResultStore(store).get_records(RECORD_KIND)            # killed before finishing
    out = subprocess.run(_cli(store), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    (resumed,) = ResultStore(store).get_records(RECORD_KIND).values()
    assert resumed["resumed_from"] > 0 and "resumed at" in out.stderr
    cfg = RLConfig.from_zoo("DoorKey-5x5", "adadem", max_timesteps=6144, evals=6, checkpoint_every=1024)
    torch.set_num_threads(1)
    straight = run_cell(cfg, 0, ResultStore(tmp_path / "straight.sqlite"))
    assert resumed["config_hash"] == straight["config_hash"]
    assert resumed["policy_sha256"] == straight["policy_sha256"] and resumed["curve"] == straight["curve"]
    # a rerun skips the finished cell
    again = subprocess.run(_cli(store), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert again.returncode == 0 and "already in" in again.stderr


def test_a_checkpoint_of_another_config_is_not_reused(tmp_path):
    store = ResultStore(tmp_path / "s.sqlite")
    cfg = _tiny("adadem", max_timesteps=3072, evals=3, checkpoint_every=1024)
    straight = run_cell(cfg, 0, ResultStore(tmp_path / "ref.sqlite"))
    blob = {"config": {**cfg.to_dict(), "ent_coef": 9.0}, "timesteps": 2048}
    store.save_state(cfg.hash(), 0, 2048, blob)   # a stale file under this cell's name
    rec = run_cell(cfg, 0, store)
    assert rec["resumed_from"] == 0 and rec["policy_sha256"] == straight["policy_sha256"]


@pytest.mark.parametrize(("args", "needle"), [
    (["--envs", "DoorKey-9x9"], "unknown environment 'DoorKey-9x9'"),
    (["--objectives", "adadm"], "adadm"),
    (["--tau", "1.2"], "--tau/--alpha apply to objective 'dem' only"),
    (["--timesteps-scale", "0"], "--timesteps-scale must be > 0"),
    (["--checkpoint-every", "1000"], "checkpoint_every must be a positive multiple of the rollout size 1024"),
    (["--seeds", "-1"], "seeds must be >= 0"),
    (["--max-timesteps", "0"], "--max-timesteps must be >= 1"),
    (["--device", "cuda:7"], "CUDA is not available"),
])
def test_bad_requests_are_one_line_usage_errors(tmp_path, args, needle):
    res = CliRunner().invoke(app, ["rl", "--store", str(tmp_path / "s.sqlite"), *args])
    assert res.exit_code == 2, res.output
    assert needle in " ".join(res.output.split()) and "Traceback" not in res.output


def test_a_missing_rl_extra_is_named(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "stable_baselines3", None)   # import fails as if not installed
    res = CliRunner().invoke(app, ["rl", "--store", str(tmp_path / "s.sqlite")])
    assert res.exit_code == 2 and "needs the [rl] extra (stable_baselines3 not installed)" in res.output


@pytest.mark.parametrize("ent_coef", [0.0, 0.001])
def test_em_trains_exactly_like_sb3s_own_ppo(ent_coef):
    """The zoo's PPO built by entmin with the EM bonus (and SB3's default Adam) against SB3's PPO('MlpPolicy')
    with the same settings and seed: 2 rollouts of training end in the same weights (bit-exact without a bonus,
    to float tolerance with one: the two entropy formulas round differently)."""
    import minigrid  # noqa: F401
    from minigrid.wrappers import FlatObsWrapper
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    import entmin.rl.runner as runner_mod

    torch.set_num_threads(1)
    cfg = _tiny("em", ent_coef=ent_coef)
    venv = VecNormalize(make_vec_env(DOORKEY, n_envs=8, seed=0, wrapper_class=FlatObsWrapper), gamma=0.99)
    ref = PPO("MlpPolicy", venv, n_steps=128, batch_size=64, n_epochs=10, learning_rate=2.5e-4, gamma=0.99,
              gae_lambda=0.95, clip_range=0.2, ent_coef=ent_coef, seed=0, device="cpu")
    ref.learn(2048)
    ours = runner_mod.make_model(cfg, 0)           # built (and seeded) after SB3's run, as SB3's was
    assert ours.policy.optimizer.defaults["fused"] is True
    for group in ours.policy.optimizer.param_groups:   # SB3's default single-tensor Adam, for a bitwise match
        group["fused"] = False
    ours.learn(2048)
    a, b = ref.policy.state_dict(), ours.policy.state_dict()
    assert set(a) <= set(b)
    for k in a:
        if ent_coef == 0.0:
            assert torch.equal(a[k], b[k]), k
        else:
            assert torch.allclose(a[k], b[k], atol=1e-5), k
