"""Export a trained policy to TorchScript or ONNX: observation (and task id) in, action
probabilities out.

Three kinds of policy:

* all tasks (default): ``probs = policy(obs, task)`` with ``obs`` ``[B, D]`` (zero-padded to
  the widest task when the run used ``pad: true``) and ``task`` ``[B]`` (int64 task index, in
  the config's order); actions a task does not have get probability 0;
* one task (``task="name"``): ``probs = policy(obs)`` with that task's own ``[B, D_t]`` and
  ``[B, A_t]``;
* Distral's distilled policy π̂₀ (``distilled=True``): ``probs = policy(obs)``.

The weights are read from ``policy.safetensors`` + ``policy.json`` (no pickle, no code).
A JSON file next to the export says what it takes and returns.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mtlkit._io import atomic_write, write_json
from mtlkit.rl._base import RLAgent
from mtlkit.rl._trainer import POLICY, agent_from_spec
from mtlkit.rl.distral import Distral

FORMATS = ("torchscript", "onnx")


class MultiTaskPolicy(nn.Module):
    """``(obs [B, D], task [B]) -> probs [B, A]``."""

    def __init__(self, agent: RLAgent) -> None:
        super().__init__()
        self.agent = agent
        self.n_tasks = agent.n_tasks

    def forward(self, obs: torch.Tensor, task: torch.Tensor) -> torch.Tensor:
        logits = self.agent(obs.unsqueeze(0).expand(self.n_tasks, -1, -1)).logits  # [T, B, A]
        idx = task.view(1, -1, 1).expand(1, -1, logits.shape[-1])
        return torch.softmax(logits.gather(0, idx).squeeze(0), dim=-1)


class TaskPolicy(nn.Module):
    """``obs [B, D_t] -> probs [B, A_t]`` of one task."""

    def __init__(self, agent: RLAgent, task: int) -> None:
        super().__init__()
        self.agent = agent
        self.task = task
        self.obs_dim = agent.spaces[task].obs_dim
        self.n_actions = agent.spaces[task].n_actions

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = F.pad(obs, (0, self.agent.obs_dim - self.obs_dim)) if self.obs_dim < self.agent.obs_dim else obs
        logits = self.agent(x.unsqueeze(0).expand(self.agent.n_tasks, -1, -1)).logits[self.task]
        return torch.softmax(logits[:, :self.n_actions], dim=-1)


class DistilledPolicy(nn.Module):
    """Distral's π̂₀: ``obs [B, D] -> probs [B, A]``."""

    def __init__(self, agent: Distral) -> None:
        super().__init__()
        self.agent = agent

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.agent.distilled_log_probs(obs).exp()


def load_policy(folder: str | Path) -> tuple[RLAgent, dict[str, Any]]:
    """The agent saved in ``folder`` (``<run>/<method>/seed-<s>``) and its ``policy.json``."""
    from safetensors.torch import load_file

    folder = Path(folder)
    meta_path, weights = folder / f"{POLICY}.json", folder / f"{POLICY}.safetensors"
    if not meta_path.exists() or not weights.exists():
        raise FileNotFoundError(f"No trained policy in {str(folder)!r} ({POLICY}.json and {POLICY}.safetensors); "
                                f"has this method and seed finished?")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    agent = agent_from_spec(meta)
    agent.load_state_dict(load_file(str(weights)))
    return agent.eval(), meta


def policy_module(agent: RLAgent, tasks: list[str], *, task: str | None = None,
                  distilled: bool = False) -> tuple[nn.Module, tuple[torch.Tensor, ...], dict[str, Any]]:
    """The wrapper to export, an example input, and the description of its inputs/outputs."""
    if distilled and task is not None:
        raise ValueError("Choose either one task's policy (task=...) or the distilled policy (distilled=True).")
    if distilled:
        if not isinstance(agent, Distral):
            raise ValueError(f"Only Distral has a distilled policy; this policy is {agent.method!r}.")
        mod: nn.Module = DistilledPolicy(agent)
        example: tuple[torch.Tensor, ...] = (torch.zeros(2, agent.obs_dim),)
        io = {"policy": "distilled", "inputs": {"obs": ["batch", agent.obs_dim]},
              "output": {"probs": ["batch", agent.n_actions]}}
    elif task is not None:
        if task not in tasks:
            raise ValueError(f"Unknown task {task!r}; the tasks are {tasks}.")
        t = tasks.index(task)
        mod = TaskPolicy(agent, t)
        sp = agent.spaces[t]
        example = (torch.zeros(2, sp.obs_dim),)
        io = {"policy": "task", "task": task, "inputs": {"obs": ["batch", sp.obs_dim]},
              "output": {"probs": ["batch", sp.n_actions]}}
    else:
        mod = MultiTaskPolicy(agent)
        example = (torch.zeros(2, agent.obs_dim), torch.zeros(2, dtype=torch.long))
        io = {"policy": "all tasks", "inputs": {"obs": ["batch", agent.obs_dim], "task": ["batch"]},
              "output": {"probs": ["batch", agent.n_actions]}, "task_index": {n: i for i, n in enumerate(tasks)}}
    return mod.eval(), example, io


def export_policy(folder: str | Path, out: str | Path, *, fmt: str = "torchscript", task: str | None = None,
                  distilled: bool = False) -> Path:
    """Export the policy saved in ``folder`` to ``out`` (TorchScript by tracing, or ONNX);
    writes ``out + ".json"`` describing the inputs and outputs. Returns ``out``."""
    if fmt not in FORMATS:
        raise ValueError(f"The 'fmt' parameter must be one of {FORMATS}. Got {fmt!r}.")
    agent, meta = load_policy(folder)
    mod, example, io = policy_module(agent, list(meta["tasks"]), task=task, distilled=distilled)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    names = list(io["inputs"])
    if fmt == "torchscript":
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", DeprecationWarning)  # torch >= 2.10 deprecates TorchScript
            traced = torch.jit.trace(mod, example)
        atomic_write(out, lambda p: traced.save(str(p)))
    else:
        try:
            import onnx  # noqa: F401
        except ImportError as exc:
            raise ImportError("ONNX export needs the onnx package: pip install 'mtlkit[export]'.") from exc
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            atomic_write(out, lambda p: torch.onnx.export(
                mod, example, str(p), dynamo=False, input_names=names, output_names=["probs"],
                dynamic_axes={**{n: {0: "batch"} for n in names}, "probs": {0: "batch"}}))
    write_json(out.with_suffix(out.suffix + ".json"),
               {"format": fmt, "method": meta["method"], "tasks": meta["tasks"], "envs": meta.get("envs"), **io})
    return out
