"""The training loop of one (method, seed): rollouts from every task's vector environment,
one A2C update of the agent per rollout, learning curves, evaluations, checkpoints.

It knows no method by name: it calls the agent's hooks (:mod:`mtlkit.rl._base`).

Segments: the run is cut into segments of ``checkpoint_every`` env steps per task. At the
start of a segment every environment is reset with a seed derived from (seed, task,
segment); at its end a checkpoint is written. A resumed run starts a new segment exactly as
the uninterrupted run does, so it produces the same numbers.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mtlkit._io import atomic_write, write_json
from mtlkit.rl._a2c import A2CSettings, Rollout, actor_critic_loss
from mtlkit.rl._base import RLAgent
from mtlkit.rl._envs import Space, TaskEnvs
from mtlkit.rl.care import CARE
from mtlkit.rl.config import RLConfig
from mtlkit.rl.distral import Distral
from mtlkit.rl.shared import Shared
from mtlkit.rl.single import Single

METHOD_CLASSES: dict[str, type[RLAgent]] = {c.method: c for c in (Single, Shared, Distral, CARE)}
RESULT = "result.json"
POLICY = "policy"
WINDOW = 10  # a learning-curve point is the mean return of the last WINDOW training episodes


def build_agent(method: str, spaces: Sequence[Space], cfg: RLConfig) -> RLAgent:
    """The agent of ``method`` for tasks with these spaces, with the config's settings."""
    if method not in METHOD_CLASSES:
        raise ValueError(f"Unknown RL method {method!r}; the methods are {sorted(METHOD_CLASSES)}.")
    common: dict[str, Any] = {"hidden": cfg.agent.hidden, "activation": cfg.agent.activation}
    if method == "distral":
        common.update(alpha=cfg.distral.alpha, beta=cfg.distral.beta)
    if method == "care":
        common.update(cfg.care.model_dump(), metadata=[t.metadata for t in cfg.tasks])
    return METHOD_CLASSES[method](spaces, **common)


def agent_from_spec(spec: dict[str, Any]) -> RLAgent:
    """Rebuild an agent from the JSON of :func:`agent_spec` (no code is executed)."""
    spaces = [Space(int(d), int(a), str(txt)) for d, a, txt in spec["spaces"]]
    cls = METHOD_CLASSES[spec["method"]]
    return cls(spaces, **spec["config"])


def agent_spec(agent: RLAgent) -> dict[str, Any]:
    return {"method": agent.method, "spaces": [[s.obs_dim, s.n_actions, s.text] for s in agent.spaces],
            "config": agent.config()}


def segment_seed(seed: int, task: int, segment: int) -> int:
    return int(np.random.SeedSequence([seed, task, segment]).generate_state(1)[0] % (2 ** 31 - 1_000_000))


def _optimizer(agent: RLAgent, cfg: RLConfig) -> torch.optim.Optimizer:
    if cfg.agent.optimizer == "rmsprop":
        return torch.optim.RMSprop(agent.parameters(), lr=cfg.agent.lr, alpha=0.99, eps=1e-5)
    return torch.optim.Adam(agent.parameters(), lr=cfg.agent.lr, eps=1e-5)


def evaluate(agent: RLAgent, cfg: RLConfig, *, device: str = "cpu") -> dict[str, dict[str, Any]]:
    """``cfg.evaluation.episodes`` episodes of each task, sub-environment ``i`` reset with
    ``evaluation.seed + i`` (the same start states for every method), greedy actions unless
    ``deterministic: false`` (then sampled with a generator seeded from the same seed).

    Returns ``{task: {"returns": [...], "mean", "sd", "dropped"}}``; a broken episode (NaN)
    is dropped and counted."""
    ev = cfg.evaluation
    n = ev.episodes
    envs = [TaskEnvs(t.env, t.kwargs, n, agent.obs_dim) for t in cfg.tasks]
    gen = torch.Generator().manual_seed(ev.seed)
    try:
        obs = np.stack([e.reset(ev.seed) for e in envs])
        done = np.zeros((len(envs), n), dtype=bool)
        returns = np.zeros((len(envs), n))
        dropped = np.zeros((len(envs), n), dtype=bool)
        agent.eval()
        guard = 0
        while not done.all():
            guard += 1
            if guard > 1_000_000:
                raise RuntimeError("Evaluation episodes did not end after 1,000,000 steps; give the "
                                   "environments a time limit (max_episode_steps).")
            with torch.no_grad():
                logits = agent.policy_logits(torch.from_numpy(obs).to(device)).cpu()
            if ev.deterministic:
                actions = logits.argmax(-1).numpy()
            else:
                probs = torch.softmax(logits, -1).reshape(-1, logits.shape[-1])
                actions = torch.multinomial(probs, 1, generator=gen).reshape(logits.shape[:2]).numpy()
            for t, e in enumerate(envs):
                res = e.step(actions[t])
                live = ~done[t]
                returns[t] += np.where(live, res.reward, 0.0)
                ended = live & (res.terminated | res.truncated | res.broken)
                dropped[t] |= live & res.broken
                done[t] |= ended
                obs[t] = res.obs
    finally:
        agent.train()
        for e in envs:
            e.close()
    out = {}
    for t, task in enumerate(cfg.tasks):
        kept = returns[t][~dropped[t]]
        out[task.name] = {"returns": [float(x) for x in kept],
                          "mean": float(kept.mean()) if kept.size else None,
                          "sd": float(kept.std()) if kept.size else None,
                          "dropped": int(dropped[t].sum())}
    return out


class RLTrainer:
    """Train one method with one seed on the config's tasks; ``out_dir`` (optional) receives
    ``curves.jsonl``, ``evaluations.jsonl``, ``checkpoints/``, ``policy.safetensors`` +
    ``policy.json`` and ``result.json``."""

    def __init__(self, cfg: RLConfig, method: str, seed: int, out_dir: str | Path | None = None, *,
                 log: Callable[[str], None] | None = None) -> None:
        self.cfg, self.method, self.seed = cfg, method, int(seed)
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.log = log or (lambda msg: None)
        self.device = cfg.device
        self.tasks = [t.name for t in cfg.tasks]
        spaces = cfg.spaces()
        with torch.random.fork_rng(devices=[]):  # the initial weights depend on the seed alone
            torch.manual_seed(self.seed)
            self.agent = build_agent(method, spaces, cfg).to(self.device)
        self.optimizer = _optimizer(self.agent, cfg)
        self.gen = torch.Generator().manual_seed(self.seed)
        self.settings = A2CSettings(gamma=cfg.agent.gamma, gae_lambda=cfg.agent.gae_lambda,
                                    ent_coef=cfg.agent.ent_coef, vf_coef=cfg.agent.vf_coef)
        a = cfg.agent
        self.per_update = a.n_envs * a.n_steps  # env steps per task per update
        self.n_updates = math.ceil(cfg.budget / self.per_update)
        self.seg_updates = max(1, math.ceil((cfg.checkpoint_every or cfg.budget) / self.per_update))
        self.log_updates = max(1, round((cfg.log_every or max(cfg.budget // 50, 1)) / self.per_update))
        self.update = 0
        self.curves: list[dict[str, Any]] = []
        self.evaluations: list[dict[str, Any]] = []
        self.dropped = [0] * len(self.tasks)
        self.train_seconds = 0.0
        self._pending = self._empty_pending()
        self._recent: list[list[float]] = [[] for _ in self.tasks]
        self._envs: list[TaskEnvs] = []
        self._obs: np.ndarray | None = None

    # ------------------------------------------------------------------ bookkeeping
    def _empty_pending(self) -> dict[str, Any]:
        return {"returns": [[] for _ in self.tasks], "lengths": [[] for _ in self.tasks], "updates": 0,
                "sums": {}}

    @property
    def env_steps(self) -> int:
        """Environment steps per task so far."""
        return self.update * self.per_update

    def _state(self) -> dict[str, Any]:
        return {"model": self.agent.state_dict(), "optimizer": self.optimizer.state_dict(),
                "generator": self.gen.get_state(), "update": self.update, "curves": self.curves,
                "evaluations": self.evaluations, "dropped": list(self.dropped), "pending": self._pending,
                "recent": self._recent, "train_seconds": self.train_seconds}

    def _load_state(self, state: dict[str, Any]) -> None:
        self.agent.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.gen.set_state(state["generator"])
        self.update = int(state["update"])
        self.curves = list(state["curves"])
        self.evaluations = list(state["evaluations"])
        self.dropped = [int(x) for x in state["dropped"]]
        self._pending = state["pending"]
        self._recent = [list(r) for r in state["recent"]]
        self.train_seconds = float(state["train_seconds"])

    def _checkpoints(self) -> Any:
        from mtlkit.training.checkpoint import CheckpointManager

        assert self.out_dir is not None
        return CheckpointManager(self.out_dir / "checkpoints", keep=2,
                                 config_hash=self.cfg.method_hash(self.method, self.seed))

    # ------------------------------------------------------------------ environments
    def _open_envs(self) -> None:
        a = self.cfg.agent
        self._envs = [TaskEnvs(t.env, t.kwargs, a.n_envs, self.agent.obs_dim) for t in self.cfg.tasks]

    def _close_envs(self) -> None:
        self._flush_dropped()
        for e in self._envs:
            e.close()
        self._envs = []

    def _reset_envs(self, segment: int) -> None:
        self._flush_dropped()
        self._obs = np.stack([e.reset(segment_seed(self.seed, t, segment)) for t, e in enumerate(self._envs)])
        for e in self._envs:
            e.take_finished()

    def _rollout(self) -> Rollout:
        a = self.cfg.agent
        assert self._obs is not None
        t_n, n, d = self._obs.shape
        obs_buf = torch.empty(a.n_steps, t_n, n, d)
        act_buf = torch.empty(a.n_steps, t_n, n, dtype=torch.long)
        rew_buf = torch.empty(a.n_steps, t_n, n)
        cut_buf = torch.empty(a.n_steps, t_n, n, dtype=torch.bool)
        val_buf = torch.empty(a.n_steps, t_n, n, dtype=torch.bool)
        for s in range(a.n_steps):
            obs = torch.from_numpy(self._obs)
            with torch.no_grad():
                logits = self.agent.policy_logits(obs.to(self.device)).cpu()
            probs = torch.softmax(logits, -1).reshape(t_n * n, -1)
            actions = torch.multinomial(probs, 1, generator=self.gen).reshape(t_n, n)
            acts = actions.numpy()
            results = [e.step(acts[t]) for t, e in enumerate(self._envs)]
            reward = np.stack([r.reward for r in results])
            trunc = np.stack([r.truncated for r in results])
            if trunc.any():  # time limit: bootstrap from the value of the last observation
                final = torch.from_numpy(np.stack([r.final_obs for r in results])).to(self.device)
                with torch.no_grad():
                    v = self.agent(final).value.cpu().numpy()
                reward = reward + np.where(trunc, self.cfg.agent.gamma * v, 0.0).astype(np.float32)
            obs_buf[s] = obs
            act_buf[s] = actions
            rew_buf[s] = torch.from_numpy(reward)
            cut_buf[s] = torch.from_numpy(np.stack([r.terminated | r.truncated | r.broken for r in results]))
            val_buf[s] = torch.from_numpy(~np.stack([r.broken for r in results]))
            self._obs = np.stack([r.obs for r in results])
        dev = self.device
        return Rollout(obs_buf.to(dev), act_buf.to(dev), rew_buf.to(dev), cut_buf.to(dev), val_buf.to(dev),
                       torch.from_numpy(self._obs).to(dev))

    def _step(self) -> None:
        batch = self._rollout()
        parts = actor_critic_loss(self.agent, batch, self.settings)
        self.optimizer.zero_grad(set_to_none=True)
        parts.total.backward()
        if self.cfg.agent.max_grad_norm is not None:
            for group in self.agent.clip_groups():
                torch.nn.utils.clip_grad_norm_(group, self.cfg.agent.max_grad_norm)
        self.optimizer.step()
        self.update += 1
        p = self._pending
        p["updates"] += 1
        rows = {"policy_loss": parts.policy, "value_loss": parts.value, "entropy": parts.entropy,
                **({"distillation_loss": parts.auxiliary} if parts.auxiliary is not None else {}),
                **parts.stats}
        for key, val in rows.items():
            arr = val.detach().cpu().double().tolist()
            prev = p["sums"].get(key)
            p["sums"][key] = arr if prev is None else _add(prev, arr)
        for t, e in enumerate(self._envs):
            for ret, length in e.take_finished():
                p["returns"][t].append(ret)
                p["lengths"][t].append(length)
                self._recent[t] = [*self._recent[t], ret][-WINDOW:]

    def _log_point(self) -> None:
        p = self._pending
        steps = self.env_steps
        for t, name in enumerate(self.tasks):
            rets, lens = p["returns"][t], p["lengths"][t]
            recent = self._recent[t]
            row: dict[str, Any] = {"env_steps": steps, "task": name,
                                   "return": float(np.mean(recent)) if recent else None,
                                   "window_return": float(np.mean(rets)) if rets else None,
                                   "episodes": len(rets), "length": float(np.mean(lens)) if lens else None,
                                   "dropped": self.dropped[t] + (self._envs[t].dropped if self._envs else 0)}
            for key, total in p["sums"].items():
                val = total[t]
                row[key] = [x / p["updates"] for x in val] if isinstance(val, list) else val / p["updates"]
            self.curves.append(row)
        self._pending = self._empty_pending()
        rets = [r["return"] for r in self.curves[-len(self.tasks):]]
        shown = ", ".join(f"{n} {'-' if r is None else f'{r:.1f}'}" for n, r in zip(self.tasks, rets))
        rate = self.env_steps * len(self.tasks) / max(self.train_seconds, 1e-9)
        self.log(f"[{self.method} seed {self.seed}] {steps:,}/{self.n_updates * self.per_update:,} steps per task"
                 f" | return {shown} | {rate:,.0f} env steps/s")

    def _evaluate(self, label: int | str) -> None:
        res = evaluate(self.agent, self.cfg, device=self.device)
        for name, r in res.items():
            self.evaluations.append({"env_steps": self.env_steps, "budget": label, "task": name, **r})

    def _write_records(self) -> None:
        if self.out_dir is None:
            return
        for fname, rows in (("curves.jsonl", self.curves), ("evaluations.jsonl", self.evaluations)):
            atomic_write(self.out_dir / fname, "".join(json.dumps(_finite(r)) + "\n" for r in rows))

    # ------------------------------------------------------------------ the loop
    def fit(self, *, resume: bool = False) -> dict[str, Any]:
        """Train to the budget (continuing from the newest checkpoint when ``resume``) and
        return the result (also written to ``result.json``)."""
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            if resume:
                got = self._checkpoints().latest()
                if got is not None:
                    state, entry = got
                    self._load_state(state)
                    self.log(f"[{self.method} seed {self.seed}] resumed at {self.env_steps:,} env steps per task "
                             f"({entry['name']})")
        at_steps = sorted(set(self.cfg.evaluation.at_steps))
        self._open_envs()
        try:
            while self.update < self.n_updates:
                if self.update % self.seg_updates == 0 or not self._obs_ready():
                    self._reset_envs(self.update // self.seg_updates)
                start = time.perf_counter()
                before = self.env_steps
                self._step()
                self.train_seconds += time.perf_counter() - start
                if self.update % self.log_updates == 0 or self.update == self.n_updates:
                    self._log_point()
                for m in at_steps:
                    if before < m <= self.env_steps:
                        self._evaluate(m)
                if self.out_dir is not None and (self.update % self.seg_updates == 0 or self.update == self.n_updates):
                    self._flush_dropped()
                    self._checkpoints().save(self._state(), step=self.update, epoch=self.update // self.seg_updates)
                    self._write_records()
                    self._obs = None  # a new segment starts with fresh environments
        finally:
            self._close_envs()
        return self.finish()

    def _obs_ready(self) -> bool:
        return self._obs is not None

    def _flush_dropped(self) -> None:
        for t, e in enumerate(self._envs):
            self.dropped[t] += e.dropped
            e.dropped = 0

    def finish(self) -> dict[str, Any]:
        """Final evaluation, policy weights and ``result.json``."""
        final = evaluate(self.agent, self.cfg, device=self.device)
        last = {name: [r for r in self.curves if r["task"] == name] for name in self.tasks}
        result: dict[str, Any] = {
            "method": self.method, "seed": self.seed, "env_steps_per_task": self.env_steps,
            "env_steps_total": self.env_steps * len(self.tasks),
            "train_seconds": self.train_seconds,
            "env_steps_per_s": self.env_steps * len(self.tasks) / max(self.train_seconds, 1e-9),
            "parameters": sum(p.numel() for p in self.agent.parameters()),
            "final": final, "dropped_episodes": {n: self.dropped[t] for t, n in enumerate(self.tasks)},
            "evaluation_dropped": {n: final[n]["dropped"] for n in self.tasks},
            "at_steps": {}}
        for row in self.evaluations:
            result["at_steps"].setdefault(str(row["budget"]), {})[row["task"]] = {
                "mean": row["mean"], "sd": row["sd"], "env_steps": row["env_steps"]}
        if isinstance(self.agent, Distral):
            result["kl"] = {n: (last[n][-1].get("kl") if last[n] else None) for n in self.tasks}
            result["c_kl"], result["c_ent"] = self.agent.c_kl, self.agent.c_ent
        if isinstance(self.agent, CARE):
            with torch.no_grad():
                w = self.agent.attention_weights().cpu().tolist()
            result["attention"] = dict(zip(self.tasks, w))
            with torch.no_grad():
                result["critic_attention"] = dict(zip(self.tasks, self.agent.critic.attention_weights().cpu().tolist()))
        if self.out_dir is not None:
            from safetensors.torch import save_file

            self._write_records()
            tensors = {k: v.detach().cpu().contiguous() for k, v in self.agent.state_dict().items()}
            atomic_write(self.out_dir / f"{POLICY}.safetensors", lambda p: save_file(tensors, str(p)))
            write_json(self.out_dir / f"{POLICY}.json", {
                **agent_spec(self.agent), "tasks": self.tasks,
                "envs": [{"env": t.env, "kwargs": t.kwargs} for t in self.cfg.tasks],
                "seed": self.seed, "env_steps_per_task": self.env_steps})
            write_json(self.out_dir / RESULT, _finite(result))
        return result


def _add(a: Any, b: Any) -> Any:
    if isinstance(a, list):
        return [_add(x, y) for x, y in zip(a, b)]
    return a + b


def _finite(obj: Any) -> Any:
    """JSON-safe: non-finite floats become None."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj
