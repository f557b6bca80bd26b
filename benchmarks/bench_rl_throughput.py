"""PPO steps per second on MiniGrid (zoo settings, 1 torch thread): SB3's default Adam against the fused Adam
entmin.rl uses, and entmin's ObjectivePPO with EM and AdaDEM bonuses. Output: one JSON line per setting.

    .venv/bin/python benchmarks/bench_rl_throughput.py [steps] [env]
"""
import json
import sys
import time

import torch

torch.set_num_threads(1)


def main() -> None:
    import minigrid  # noqa: F401
    from minigrid.wrappers import FlatObsWrapper
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    from entmin.rl.runner import make_model
    from entmin.rl.settings import RLConfig

    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 20480
    env_id = sys.argv[2] if len(sys.argv) > 2 else "MiniGrid-DoorKey-5x5-v0"
    for name, fused in (("sb3 PPO, default Adam", False), ("sb3 PPO, fused Adam", True)):
        venv = VecNormalize(make_vec_env(env_id, n_envs=8, seed=0, wrapper_class=FlatObsWrapper), gamma=0.99)
        kw = {"optimizer_kwargs": {"fused": True}} if fused else {}
        m = PPO("MlpPolicy", venv, n_steps=128, batch_size=64, n_epochs=10, learning_rate=2.5e-4, gamma=0.99,
                gae_lambda=0.95, clip_range=0.2, ent_coef=0.001, seed=0, device="cpu", policy_kwargs=kw)
        t = time.perf_counter()
        m.learn(steps)
        print(json.dumps({"setting": name, "env": env_id, "steps_per_s": round(steps / (time.perf_counter() - t))}))
    for objective in ("em", "adadem"):
        m = make_model(RLConfig.from_zoo(env_id, objective), 0)
        t = time.perf_counter()
        m.learn(steps)
        print(json.dumps({"setting": f"entmin ObjectivePPO ({objective}, fused Adam)", "env": env_id,
                          "steps_per_s": round(steps / (time.perf_counter() - t))}))


if __name__ == "__main__":
    main()
