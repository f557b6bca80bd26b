"""The RL benchmark's final-return table and learning-curve figure, from the store's ``rl`` records.

Cells are grouped by everything that decides them except the seed (the config hash); a row is one
(environment, budget) with, per objective, mean +- std over seeds of each seed's final evaluation return (itself
the mean of ``eval_episodes`` episodes; deterministic and sampled policy), the number of seeds, and the budget
against the zoo's.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from .settings import MINIGRID_ENVS

__all__ = ["rl_curves_figure", "rl_groups", "rl_table_markdown"]


def _label(rec: dict[str, Any]) -> str:
    opts = rec.get("objective_options") or {}
    return rec["objective"] + (f"({', '.join(f'{k}={v}' for k, v in sorted(opts.items()))})" if opts else "")


def rl_groups(records: dict[str, dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for rec in records.values():
        groups[rec["config_hash"]].append(rec)
    return {h: sorted(v, key=lambda r: r["seed"]) for h, v in groups.items()}


def _by_env(records: dict[str, dict[str, Any]]) -> dict[tuple[str, int, bool], dict[str, list[dict[str, Any]]]]:
    """(environment, budget, observation/reward normalisation on) -> objective label -> that configuration's
    records. Two configurations that would share a label (e.g. another entropy weight or code version) get their
    config hash appended, never merged."""
    out: dict[tuple[str, int, bool], dict[str, list[dict[str, Any]]]] = defaultdict(dict)
    for h, recs in sorted(rl_groups(records).items()):
        cell = out[(recs[0]["env"], recs[0]["timesteps"], bool(recs[0]["config"].get("normalize", True)))]
        label = _label(recs[0])
        cell[label if label not in cell else f"{label} [{h[:6]}]"] = recs
    return out


def _env_order(env: str) -> int:
    return list(MINIGRID_ENVS).index(env) if env in MINIGRID_ENVS else len(MINIGRID_ENVS)


def _row_name(env: str, normalize: bool) -> str:
    """The environment's short name; a run without the zoo's VecNormalize says so."""
    return env.removeprefix("MiniGrid-").removesuffix("-v0") + ("" if normalize else " (no VecNormalize)")


_METRICS = (("final_mean", "deterministic"), ("final_stochastic_mean", "sampled"))


def rl_table_markdown(records: dict[str, dict[str, Any]]) -> str:
    """One row per (environment, budget): each objective's final return, mean +- std over seeds, for the
    deterministic policy (the zoo's evaluation) and the sampling one, and AdaDEM - EM over matched seeds
    (positive: the decoupled bonus did better)."""
    by_env = _by_env(records)
    objectives = sorted({o for v in by_env.values() for o in v}, key=lambda o: (o != "em", o))
    paired = "em" in objectives and "adadem" in objectives
    head = ["environment", "steps (zoo)"]
    for _, policy in _METRICS:
        head += [f"{o} ({policy})" for o in objectives] + (["adadem − em"] if paired else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (env, steps, norm), objs in sorted(by_env.items(), key=lambda kv: (_env_order(kv[0][0]), kv[0][1],
                                                                            not kv[0][2])):
        zoo = MINIGRID_ENVS.get(env, {}).get("n_timesteps")
        row = [_row_name(env, norm), f"{steps:.3g} ({zoo:.0e})" if zoo else f"{steps}"]
        for metric, _ in _METRICS:
            for o in objectives:
                finals = np.array([r[metric] for r in objs.get(o, [])])
                row.append(f"{finals.mean():.3f} ± {finals.std():.3f} (n={len(finals)})" if len(finals) else "–")
            if paired:
                em = {r["seed"]: r[metric] for r in objs.get("em", [])}
                ada = {r["seed"]: r[metric] for r in objs.get("adadem", [])}
                both = sorted(em.keys() & ada.keys())
                row.append(f"{np.mean([ada[s] - em[s] for s in both]):+.3f} (n={len(both)})" if both else "–")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def rl_curves_figure(records: dict[str, dict[str, Any]], path: Path) -> Path:
    """Mean +- std (over seeds) of the evaluation return against training steps, one panel per environment and
    budget, one line per objective."""
    from ..viz import pyplot, save

    plt = pyplot()
    palette = {"em": "#1f77b4", "adadem": "#d62728"}

    panels = _by_env(records)
    keys = sorted(panels, key=lambda k: (_env_order(k[0]), k[1], not k[2]))
    cols = min(3, len(keys))
    rows = -(-len(keys) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.1 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys, strict=False):
        for obj, recs in sorted(panels[key].items(), key=lambda kv: (kv[0] != "em", kv[0])):
            steps = np.array([c["timesteps"] for c in recs[0]["curve"]])
            colour = palette.get(obj, f"C{2 + len(palette)}")
            palette.setdefault(obj, colour)
            for key_, style_, policy in (("returns", "-", "det."), ("returns_stochastic", "--", "sampled")):
                curves = np.array([[np.mean(c[key_]) for c in r["curve"]] for r in recs
                                   if len(r["curve"]) == len(steps)])
                mean, std = curves.mean(0), curves.std(0)
                ax.plot(steps, mean, style_, label=f"{obj}, {policy} (n={len(curves)})", color=colour)
                ax.fill_between(steps, mean - std, mean + std, color=colour, alpha=0.12, linewidth=0)
        ax.set_title(_row_name(key[0], key[2]) + f" ({key[1]:.2g} steps)", fontsize=10)
        ax.set_xlabel("training steps")
        ax.set_ylabel("eval return")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    save(fig, path)
    return path
