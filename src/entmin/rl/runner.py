"""Run one (environment, objective, seed) cell of the RL benchmark into the results store.

A cell trains in chunks of ``eval_every`` steps; after each chunk the policy plays ``eval_episodes`` episodes
on fixed layouts (seeds 10**6 + i, the same for every objective and seed) twice: deterministically (the zoo's
evaluation, and the paper's most likely reading) and sampling its actions (a policy that is still stochastic
scores 0 deterministically when its most likely action loops, e.g. turning on the spot); both give curves. A finished cell is one record ``rl/<config hash>/<seed>`` in the store, written in one
transaction, so a rerun skips it.

Long cells save a checkpoint every ``checkpoint_every`` steps that resumes *bit-exactly*: after each checkpoint
the training environments are reset with seeds derived from (seed, step), in an uninterrupted run as in a
resumed one, so a run killed at any instant and restarted gives the same numbers as one never killed. The
checkpoint holds only tensors and numbers (policy with AdaDEM's bank, optimizer, normalisation statistics,
the RNG states and the curve so far) and is loaded with ``weights_only=True``; one written by another config
or code version is ignored (and recomputed), never reused.
"""
from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..bench.store import ResultStore
from ..data.fingerprint import state_dict_sha256
from .settings import RLConfig

__all__ = ["RECORD_KIND", "cell_key", "evaluate_policy", "make_model", "run_cell"]

RECORD_KIND = "rl"
EVAL_SEED_BASE = 10 ** 6


def cell_key(cfg: RLConfig, seed: int) -> str:
    return f"{cfg.hash()}/{seed}"


def _boundary_seed(seed: int, step: int) -> int:
    return (seed * 1_000_003 + step) % (2 ** 31)


def _make_env(env_id: str):
    import gymnasium as gym
    import minigrid  # noqa: F401  (registers the MiniGrid environments)
    from minigrid.wrappers import FlatObsWrapper
    return FlatObsWrapper(gym.make(env_id))


def make_model(cfg: RLConfig, seed: int, device: str = "cpu"):
    """The zoo's PPO (FlatObsWrapper, VecNormalize) with the config's objective as its entropy term."""
    import minigrid  # noqa: F401
    from minigrid.wrappers import FlatObsWrapper
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    from .policy import ObjectivePolicy, ObjectivePPO

    venv = make_vec_env(cfg.env, n_envs=cfg.n_envs, seed=seed, wrapper_class=FlatObsWrapper)
    if cfg.normalize:  # the zoo passes its gamma to VecNormalize
        venv = VecNormalize(venv, gamma=cfg.gamma)
    # fused Adam: the same update as SB3's default single-tensor loop, ~1.35x faster end to end on CPU
    # (BENCHMARKS.md section 15); both objectives use it. Passing optimizer_kwargs replaces SB3's own default
    # ({"eps": 1e-5} for Adam), so eps is restated: without it Adam ran with 1e-8 (tests/test_rl.py checks
    # the trained weights against SB3's PPO)
    policy_kwargs = {"objective": cfg.objective, "objective_options": dict(cfg.objective_options),
                     "optimizer_kwargs": {"fused": True, "eps": 1e-5}}
    return ObjectivePPO(ObjectivePolicy, venv, n_steps=cfg.n_steps, batch_size=cfg.batch_size,
                        n_epochs=cfg.n_epochs, learning_rate=cfg.learning_rate, gamma=cfg.gamma,
                        gae_lambda=cfg.gae_lambda, clip_range=cfg.clip_range, ent_coef=cfg.ent_coef,
                        policy_kwargs=policy_kwargs, seed=seed, device=device, verbose=0)


def evaluate_policy(model, cfg: RLConfig, episodes: int | None = None, *, deterministic: bool = True
                    ) -> list[float]:
    """Returns of ``episodes`` episodes on the fixed evaluation layouts, played in lockstep (one batched forward
    per step), observations normalised with the training statistics (not updated).

    ``deterministic``: the most likely action (the zoo's evaluation); otherwise actions are sampled from the
    policy with a generator of its own, so evaluating never moves the training's random streams.
    """
    episodes = cfg.eval_episodes if episodes is None else episodes
    envs = [_make_env(cfg.env) for _ in range(episodes)]
    obs = [env.reset(seed=EVAL_SEED_BASE + i)[0] for i, env in enumerate(envs)]
    returns = [0.0] * episodes
    alive = list(range(episodes))
    norm = model.get_vec_normalize_env()
    gen = torch.Generator().manual_seed(EVAL_SEED_BASE)
    policy = model.policy
    policy.set_training_mode(False)
    while alive:
        batch = np.stack([obs[i] for i in alive])
        if norm is not None:
            batch = norm.normalize_obs(batch)
        with torch.no_grad():
            probs = policy.get_distribution(torch.as_tensor(batch, dtype=torch.float32, device=policy.device)
                                            ).distribution.probs.cpu()
        actions = probs.argmax(1) if deterministic else torch.multinomial(probs, 1, generator=gen).squeeze(1)
        still = []
        for i, a in zip(alive, actions.tolist(), strict=True):
            obs[i], r, term, trunc, _ = envs[i].step(a)
            returns[i] += float(r)
            if not (term or trunc):
                still.append(i)
        alive = still
    for env in envs:
        env.close()
    return returns


# ----- exact checkpoints ---------------------------------------------------------------------------------------
def _rms_state(rms) -> dict[str, torch.Tensor]:
    return {"mean": torch.from_numpy(np.array(rms.mean, dtype=np.float64)),
            "var": torch.from_numpy(np.array(rms.var, dtype=np.float64)), "count": float(rms.count)}


def _load_rms(rms, st: dict[str, Any]) -> None:
    rms.mean = st["mean"].numpy().copy()
    rms.var = st["var"].numpy().copy()
    rms.count = float(st["count"])


def _checkpoint(model, cfg: RLConfig, curve: list[dict[str, Any]]) -> dict[str, Any]:
    np_state = np.random.get_state()
    blob: dict[str, Any] = {
        "config": cfg.to_dict(), "timesteps": int(model.num_timesteps), "n_updates": int(model._n_updates),
        "policy": model.policy.state_dict(), "optimizer": model.policy.optimizer.state_dict(),
        "rng": {"torch": torch.get_rng_state(), "python": random.getstate(),
                "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]]},
        "curve": curve}
    norm = model.get_vec_normalize_env()
    if norm is not None:
        blob["obs_rms"], blob["ret_rms"] = _rms_state(norm.obs_rms), _rms_state(norm.ret_rms)
    return blob


def _restore(model, blob: dict[str, Any]) -> list[dict[str, Any]]:
    model.policy.load_state_dict(blob["policy"])
    model.policy.optimizer.load_state_dict(blob["optimizer"])
    model.num_timesteps = blob["timesteps"]
    model._n_updates = blob["n_updates"]
    norm = model.get_vec_normalize_env()
    if norm is not None:
        _load_rms(norm.obs_rms, blob["obs_rms"])
        _load_rms(norm.ret_rms, blob["ret_rms"])
    rng = blob["rng"]
    torch.set_rng_state(rng["torch"])
    random.setstate(rng["python"])
    n = rng["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), *n[2:]))
    return list(blob["curve"])


def _reset_at_boundary(model, seed: int) -> None:
    """Reset the training environments with seeds derived from (seed, step): done after every checkpoint, in
    uninterrupted and resumed runs alike, so that a resumed run continues exactly as the uninterrupted one."""
    env = model.get_env()
    env.seed(_boundary_seed(seed, model.num_timesteps))
    model._last_obs = env.reset()
    model._last_episode_starts = np.ones((env.num_envs,), dtype=bool)


# ----- one cell -----------------------------------------------------------------------------------------------
def run_cell(cfg: RLConfig, seed: int, store: ResultStore, *, device: str = "cpu",
             on_eval: Callable[[int, float], None] | None = None) -> dict[str, Any]:
    """Train and evaluate one cell (or return its stored record); resumes from the cell's checkpoint."""
    key = cell_key(cfg, seed)
    done = store.get_records(RECORD_KIND).get(key)
    if done is not None:
        return done
    h = cfg.hash()
    store.register(h, {"kind": "rl", **cfg.to_dict()})
    model = make_model(cfg, seed, device)
    curve: list[dict[str, Any]] = []
    resumed_from = 0
    saved = store.load_state(h, seed)
    if saved is not None and saved[1].get("config") == cfg.to_dict():
        curve = _restore(model, saved[1])
        resumed_from = model.num_timesteps
        _reset_at_boundary(model, seed)
    start, t0 = model.num_timesteps, time.perf_counter()
    while model.num_timesteps < cfg.timesteps:
        model.learn(min(cfg.eval_every, cfg.timesteps - model.num_timesteps), reset_num_timesteps=False)
        returns = evaluate_policy(model, cfg)
        curve.append({"timesteps": int(model.num_timesteps), "returns": returns,
                      "returns_stochastic": evaluate_policy(model, cfg, deterministic=False)})
        if model.num_timesteps % cfg.checkpoint_every == 0 and model.num_timesteps < cfg.timesteps:
            store.save_state(h, seed, int(model.num_timesteps), _checkpoint(model, cfg, curve))
            _reset_at_boundary(model, seed)
        if on_eval is not None:
            on_eval(int(model.num_timesteps), float(np.mean(returns)))
    wall = time.perf_counter() - t0
    final, final_s = curve[-1]["returns"], curve[-1]["returns_stochastic"]
    record = {"config_hash": h, "seed": seed, "env": cfg.env, "objective": cfg.objective,
              "objective_options": dict(cfg.objective_options), "timesteps": cfg.timesteps,
              "curve": curve, "final_mean": float(np.mean(final)), "final_std": float(np.std(final)),
              "final_stochastic_mean": float(np.mean(final_s)), "final_stochastic_std": float(np.std(final_s)),
              "wall_seconds": wall, "steps_per_second": (cfg.timesteps - start) / max(wall, 1e-9),
              "resumed_from": resumed_from, "device": device, "config": cfg.to_dict(),
              "policy_sha256": state_dict_sha256(model.policy.state_dict())}
    store.put_record(RECORD_KIND, key, record)
    store.drop_state(h, seed)
    model.get_env().close()
    return record
