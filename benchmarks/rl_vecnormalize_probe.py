"""Is the zoo's MiniGrid failure in training or in our evaluation? (BENCHMARKS.md section 15.) Trains the zoo's
DoorKey-5x5 PPO (with its VecNormalize, EM bonus) and prints, every 10,240 steps, the mean return of the *training*
episodes (SB3's Monitor, raw rewards) next to entmin's deterministic and sampled evaluation.
Usage: python benchmarks/rl_vecnormalize_probe.py [seed] [rounds]"""
import sys

import numpy as np
import torch

from entmin.rl.runner import evaluate_policy, make_model
from entmin.rl.settings import RLConfig


def main(seed: int = 1, rounds: int = 6) -> None:
    torch.set_num_threads(1)
    cfg = RLConfig.from_zoo("DoorKey-5x5", "em")
    model = make_model(cfg, int(seed))
    for _ in range(int(rounds)):
        model.learn(10_240, reset_num_timesteps=False)
        train = np.mean([e["r"] for e in model.ep_info_buffer]) if model.ep_info_buffer else float("nan")
        print(f"{model.num_timesteps} steps: training episodes {train:.3f}, evaluation deterministic "
              f"{np.mean(evaluate_policy(model, cfg)):.3f}, sampled "
              f"{np.mean(evaluate_policy(model, cfg, deterministic=False)):.3f}", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
