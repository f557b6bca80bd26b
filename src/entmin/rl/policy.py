"""PPO whose entropy bonus is an entmin objective over the policy's action logits.

Sign convention (dem_spec.md section 5): SB3's PPO minimises ``policy_loss - ent_coef * mean(entropy) + ...``,
i.e. the bonus *maximises* what ``evaluate_actions`` returns as the entropy. :class:`ObjectivePolicy` returns the
objective's per-sample value there, so the loss becomes ``... - ent_coef * mean(objective(logits))``: with
``em`` that is SB3's own term (the Shannon entropy of the action distribution, equal to 1e-6); with ``adadem``
its gradient is ``-ent_coef`` times AdaDEM's gradient, i.e. the bonus now maximises decoupled entropy, and the
MEC bank is a (A, A) running mean over actions, updated on every minibatch.

How it plugs in: the policy overrides ``_get_action_dist_from_latent`` (to see the logits of the distribution
SB3 builds) and ``evaluate_actions`` (to return the objective instead of ``distribution.entropy()``), and
:class:`ObjectivePPO` checks after each ``train()`` that SB3 really called ``evaluate_actions`` with the
objective in place: an SB3 upgrade that computes the entropy another way fails loudly instead of silently
training standard PPO.
"""
from __future__ import annotations

from typing import Any

import torch
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.distributions import CategoricalDistribution
from stable_baselines3.common.policies import ActorCriticPolicy

from ..objectives import get_objective

__all__ = ["ObjectivePPO", "ObjectivePolicy"]


class ObjectivePolicy(ActorCriticPolicy):
    """SB3 actor-critic policy whose ``evaluate_actions`` returns ``objective(action_logits)`` as the entropy."""

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, lr_schedule: Any, *,
                 objective: str = "em", objective_options: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if not isinstance(action_space, spaces.Discrete):
            raise ValueError(f"an entropy objective over action logits needs a discrete action space, got "
                             f"{type(action_space).__name__}")
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)
        # a registered submodule, so that AdaDEM's bank is in the policy's state_dict (saved and restored)
        self.objective = get_objective(objective, num_classes=int(action_space.n), **(objective_options or {}))
        self.objective_calls = 0
        self._last_dist: CategoricalDistribution | None = None

    def _get_action_dist_from_latent(self, latent_pi: torch.Tensor):
        dist = super()._get_action_dist_from_latent(latent_pi)
        self._last_dist = dist
        return dist

    def evaluate_actions(self, obs: Any, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        self._last_dist = None
        values, log_prob, _ = super().evaluate_actions(obs, actions)
        dist = self._last_dist
        if not isinstance(dist, CategoricalDistribution):
            raise RuntimeError("SB3's evaluate_actions no longer builds its distribution through "
                               "_get_action_dist_from_latent; entmin.rl cannot see the action logits")
        # Categorical keeps logits normalised (log-softmax): every entmin objective depends on the logits only
        # through softmax and differences of logits, so value and gradient equal those of the raw logits
        self.objective_calls += 1
        return values, log_prob, self.objective(dist.distribution.logits)


class ObjectivePPO(PPO):
    """PPO that refuses to train if SB3 bypassed the policy's objective (see the module docstring)."""

    def train(self) -> None:
        policy = self.policy
        if not isinstance(policy, ObjectivePolicy):
            raise TypeError("ObjectivePPO needs an ObjectivePolicy")
        before = policy.objective_calls
        super().train()
        if policy.objective_calls == before:
            raise RuntimeError("stable-baselines3's PPO.train did not call policy.evaluate_actions: the entropy "
                               "objective was bypassed (an SB3 change entmin.rl does not support yet)")
