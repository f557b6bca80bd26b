"""Entropy objectives in reinforcement learning: PPO whose entropy bonus is any entmin objective.

The paper's RL row (dem_spec.md section 5): PPO from RL-Baselines3-Zoo on MiniGrid, where the entropy bonus is
still *maximised* but computed with AdaDEM instead of Shannon entropy. Needs the ``[rl]`` extra
(stable-baselines3, minigrid); importing :mod:`entmin.rl` itself does not, so that the command line can say
what is missing in one line.
"""
from __future__ import annotations

from .settings import MINIGRID_ENVS, RLConfig, zoo_settings

__all__ = ["MINIGRID_ENVS", "RLConfig", "require_rl_extra", "zoo_settings"]


def require_rl_extra() -> None:
    """Raise one clear :class:`~entmin.errors.UsageError` if stable-baselines3 or minigrid is missing."""
    from ..errors import UsageError
    missing = []
    for mod in ("stable_baselines3", "minigrid", "gymnasium"):
        try:
            __import__(mod)
        except ImportError:
            missing.append(mod)
    if missing:
        raise UsageError(f"`entmin rl` needs the [rl] extra ({', '.join(missing)} not installed): "
                         "bash scripts/setup.sh --rl, or pip install 'entmin[rl]'")
