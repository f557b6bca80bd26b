"""The zoo's PPO settings for MiniGrid and the typed, hashable description of one RL run.

Transcribed from RL-Baselines3-Zoo 2.9.2, ``rl_zoo3/hyperparams/ppo.yml`` (the ``minigrid-defaults`` anchor and
its per-environment overrides) rather than read from it at run time: rl_zoo3 pulls moviepy, pygame and a video
stack that a CPU research install does not need. ``tests/test_rl.py`` compares this table with the YAML when
rl_zoo3 is installed. The one deliberate change is the paper's entropy weight, 0.001 (the zoo uses 0.0).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..data.fingerprint import json_fingerprint
from ..errors import UsageError

__all__ = ["MINIGRID_ENVS", "PAPER_ENT_COEF", "RL_CODE_VERSION", "RLConfig", "resolve_env", "zoo_settings"]

# bump when a change to entmin.rl changes what a run computes: it is part of every RL config hash
# 2: stochastic-policy evaluation recorded; 3: Adam eps 1e-5 as in SB3 (versions 1-2 ran with 1e-8)
RL_CODE_VERSION = 3
PAPER_ENT_COEF = 0.001

_ZOO_DEFAULTS: dict[str, Any] = {
    "n_envs": 8, "n_steps": 128, "batch_size": 64, "gae_lambda": 0.95, "gamma": 0.99, "n_epochs": 10,
    "learning_rate": 2.5e-4, "clip_range": 0.2, "normalize": True, "n_timesteps": 100_000,
}
# the paper's nine environments (dem_spec.md section 5) -> the zoo's overrides of the defaults
MINIGRID_ENVS: dict[str, dict[str, Any]] = {
    "MiniGrid-DoorKey-5x5-v0": {"n_timesteps": 100_000},
    "MiniGrid-Empty-Random-5x5-v0": {"n_timesteps": 100_000},
    "MiniGrid-Unlock-v0": {"n_timesteps": 100_000},
    "MiniGrid-KeyCorridorS3R1-v0": {"n_timesteps": 500_000},
    "MiniGrid-RedBlueDoors-6x6-v0": {"n_timesteps": 1_000_000, "n_steps": 512},
    "MiniGrid-FourRooms-v0": {"n_timesteps": 5_000_000, "n_steps": 512},
    "MiniGrid-Fetch-5x5-N2-v0": {"n_timesteps": 5_000_000},
    "MiniGrid-GoToDoor-5x5-v0": {"n_timesteps": 5_000_000},
    "MiniGrid-PutNear-6x6-N2-v0": {"n_timesteps": 10_000_000},
}


def resolve_env(name: str) -> str:
    """Full gymnasium id of one of the paper's environments; accepts ``DoorKey-5x5`` or ``doorkey-5x5-v0``."""
    key = name.strip().lower().removeprefix("minigrid-").removesuffix("-v0")
    for env_id in MINIGRID_ENVS:
        if env_id.lower().removeprefix("minigrid-").removesuffix("-v0") == key:
            return env_id
    short = ", ".join(e.removeprefix("MiniGrid-").removesuffix("-v0") for e in MINIGRID_ENVS)
    raise UsageError(f"unknown environment {name!r}; choose from the paper's nine: {short} (or 'all')")


def zoo_settings(env_id: str) -> dict[str, Any]:
    """The zoo's PPO settings of one environment (its budget in ``n_timesteps``)."""
    return {**_ZOO_DEFAULTS, **MINIGRID_ENVS[resolve_env(env_id)]}


@dataclass(frozen=True)
class RLConfig:
    """Everything that decides one (environment, objective) run except the seed; its hash keys the store.

    ``timesteps`` is the run's budget (the zoo's, or a stated reduction); evaluations happen every
    ``eval_every`` steps (a multiple of the rollout size) and at the end, with ``eval_episodes`` deterministic episodes on fixed
    layouts; long runs save an exactly resumable checkpoint every ``checkpoint_every`` steps.
    """
    env: str
    objective: str = "em"
    objective_options: tuple[tuple[str, Any], ...] = ()
    ent_coef: float = PAPER_ENT_COEF
    timesteps: int = 100_000
    n_envs: int = 8
    n_steps: int = 128
    batch_size: int = 64
    n_epochs: int = 10
    learning_rate: float = 2.5e-4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    normalize: bool = True
    eval_every: int = 10_240
    eval_episodes: int = 10
    checkpoint_every: int = 102_400
    versions: tuple[tuple[str, str], ...] = field(default=())

    @property
    def rollout(self) -> int:
        return self.n_envs * self.n_steps

    def __post_init__(self) -> None:
        for name in ("timesteps", "eval_every", "checkpoint_every"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < self.rollout or v % self.rollout:
                raise UsageError(f"{name} must be a positive multiple of the rollout size "
                                 f"{self.rollout} (n_envs x n_steps), got {v!r}")
        if self.checkpoint_every % self.eval_every:
            raise UsageError("checkpoint_every must be a multiple of eval_every")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["objective_options"] = dict(self.objective_options)
        d["versions"] = dict(self.versions)
        d["rl_code_version"] = RL_CODE_VERSION
        return d

    def hash(self) -> str:
        return json_fingerprint(self.to_dict())

    @classmethod
    def from_zoo(cls, env: str, objective: str = "em", *, timesteps_scale: float = 1.0,
                 max_timesteps: int | None = None, evals: int = 10, **overrides: Any) -> RLConfig:
        """The zoo's settings for ``env``, its budget scaled and capped, rounded to whole rollouts."""
        s = zoo_settings(env)
        rollout = s["n_envs"] * s["n_steps"]
        if not timesteps_scale > 0:
            raise UsageError(f"--timesteps-scale must be > 0, got {timesteps_scale}")
        budget = s["n_timesteps"] * timesteps_scale
        if max_timesteps is not None:
            budget = min(budget, max_timesteps)
        timesteps = max(rollout, round(budget / rollout) * rollout)
        eval_every = max(rollout, round(timesteps / evals / rollout) * rollout)
        ckpt = max(eval_every, (102_400 // eval_every) * eval_every)
        kw = {k: s[k] for k in ("n_envs", "n_steps", "batch_size", "n_epochs", "learning_rate", "gamma",
                                "gae_lambda", "clip_range", "normalize")}
        kw.update(timesteps=timesteps, eval_every=eval_every, checkpoint_every=ckpt, versions=_versions())
        kw.update(overrides)
        return cls(env=resolve_env(env), objective=objective, **kw)


def _versions() -> tuple[tuple[str, str], ...]:
    """Library versions that change what a run computes (an upgraded environment is a different run)."""
    from importlib.metadata import PackageNotFoundError, version
    out = []
    for pkg in ("stable-baselines3", "minigrid", "gymnasium", "torch"):
        try:
            out.append((pkg, version(pkg)))
        except PackageNotFoundError:
            out.append((pkg, "missing"))
    return tuple(out)
