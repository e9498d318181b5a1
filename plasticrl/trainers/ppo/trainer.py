"""Recurrent PPO for plastic spiking policies (``trainer: ppo``).

The policy is the same batched controller the ES trainer evolves, loaded as one member with
``num_envs`` episodes; its searched flat genome ``[1, D]`` (initial weights, rule
coefficients, eta, encoder gains) is one leaf tensor trained by Adam. An update:

1. **Rollout.** Every env starts a fresh episode (reset seed from ``(seed, update)``), so a
   checkpoint between updates holds everything a resumed run needs. Each control step:
   ``mean = policy.act(obs)``; the action is ``mean + std * noise`` (Gaussian head, learned
   state-independent log-std; the env receives it clipped into the bounds); after the env
   step ``policy.learn(raw reward)`` (the deployed agent sees raw rewards too) and
   ``policy.reset(done | autoreset)``. The whole per-episode state (potentials, traces, fast
   weights, BCM thresholds, RPE baseline) is snapshotted every ``seq_len`` steps.
2. **Advantages.** A separate value MLP on the normalised observation (see
   :mod:`~plasticrl.trainers.ppo.critic`), rewards scaled by the running std of discounted
   returns, GAE with truncation bootstrapping. Steps where the vector env autoresets (next-step
   autoreset: action ignored, reward 0) are masked out of every loss.
3. **Truncated BPTT.** For ``epochs`` passes, minibatches of sequences are replayed from their
   snapshots (:func:`~plasticrl.trainers.ppo.state_tree.restore`, bit-exact values with a
   straight-through path to the initial weights), re-running act/learn/reset with the
   recorded observations, rewards and reset masks; gradients flow through every spiking
   sub-step (surrogate spikes) and every plasticity update inside the sequence. Loss:
   clipped surrogate + ``vf_coef`` x value loss - ``ent_coef`` x entropy; actor and critic
   gradients are clipped separately (their scales differ by orders of magnitude).

Observation statistics are merged after each update and frozen within it (the stored
observations are already normalised, so replay is unaffected). Every random draw derives
from ``(seed, update, stream)``; with the checkpoint (genome, log-std, critic, Adam, obs and
reward statistics, counters) ``--resume`` continues exactly like the uninterrupted run. The run's
lifecycle (lock, stamp, logger, evaluation schedule, best and final agents, checkpoint order,
summary) is :class:`plasticrl.trainers.lifecycle.RunLoop`'s; this module implements one update.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from plasticrl.rollouts.saved_agent import save_agent, training_metadata
from plasticrl.agents import make_policy
from plasticrl.config import ExperimentConfig, config_to_dict
from plasticrl.device import resolve_device
from plasticrl.errors import PlasticRLError
from plasticrl.trainers.ppo import state_tree
from plasticrl.trainers.ppo.critic import ValueMLP
from plasticrl.trainers.ppo.gae import gae
from plasticrl.config.ppo import PPOConfig, parse_ppo_config
from plasticrl.trainers.ppo.loss import clipped_surrogate, gaussian_entropy, gaussian_log_prob, masked_mean, value_loss
from plasticrl.io import atomic_torch_save
from plasticrl.seeding import Stream, derive_env_seed, derive_seed
from plasticrl.rollouts.env_setup import make_env, training_reset_options
from plasticrl.rollouts.obs_norm import ObsBatchMoments, ObsNormalizer
from plasticrl.rollouts.loop import rollout
from plasticrl.trainers.lifecycle import Callback, RunLoop, RunState, default_wandb_id, load_checkpoint_payload
from plasticrl.trainers.runs import CHECKPOINT_FILE

__all__ = ["PPOConfig", "PPOState", "PPOTrainer", "Rollout", "parse_ppo_config"]

CHECKPOINT_FORMAT = "plasticrl.gradient.ppo/1"  # a format tag kept from the module it started in


@dataclass(kw_only=True)
class PPOState(RunState):
    """The statistics of a PPO run between updates (with :class:`RunState`'s counters and best). The
    trained tensors (genome, log-std, critic) and Adam live on the trainer as modules; its checkpoint
    holds them beside this state."""

    obs_norm: ObsNormalizer | None = None
    """Observation statistics, merged after each update and frozen within it; None when
    ``train.obs_norm`` is off."""
    ret_norm: ObsNormalizer
    """Scalar moments of the discounted returns: the reward scale for the critic and GAE."""


@dataclass
class Rollout:
    """One update's data, time-major ``[T, N, ...]``; ``snapshots`` stacked ``[C, N, ...]``."""

    obs: torch.Tensor  # normalised observations the policy saw
    means: torch.Tensor  # the policy's actions (Gaussian means)
    actions: torch.Tensor  # sampled (unclipped) actions
    log_probs: torch.Tensor
    rewards: torch.Tensor  # raw rewards, as given to policy.learn
    terminated: torch.Tensor
    done: torch.Tensor  # terminated | truncated
    reset_after: torch.Tensor  # rows reset after learn (done or autoreset step)
    valid: torch.Tensor  # false on autoreset steps (no transition)
    last_obs: torch.Tensor  # [N, obs] normalised observation after the last step (bootstrap)
    snapshots: Any
    episode_returns: list[float]
    episode_lengths: list[int]
    obs_moments: ObsBatchMoments


class PPOTrainer(RunLoop):
    """Trains one ``trainer: ppo`` config in one run directory. ``PPOTrainer(cfg, dir).train()``."""

    step_name = "updates"
    trainer_name = "ppo"

    def __init__(self, config: ExperimentConfig, run_dir: Path,
                 on_generation: Callback | None = None):
        if getattr(config, "trainer", "ppo") != "ppo":
            raise PlasticRLError(f"PPOTrainer needs trainer: ppo; got trainer: {config.trainer!r}")
        self.ppo = parse_ppo_config(getattr(config, "ppo", None))
        super().__init__(config, run_dir, on_generation)
        self.device = resolve_device(config.device)
        self.env = make_env(config, self.ppo.num_envs)
        obs_space, act_space = self.env.single_observation_space, self.env.single_action_space

        def build():
            # autograd: the learner is differentiated, so kernel: auto picks torch (one kernel for all three)
            return make_policy(config.policy, obs_space, act_space, device=self.device, dtype=config.dtype,
                               autograd=True)

        self.actor = build()  # rollouts: N rows, no graph
        self.learner = build()  # replay: one row per sequence of a minibatch, with graph
        self.eval_policy = build()
        self.eval_env = make_env(config, config.train.eval_episodes)
        self.dtype = self.actor.dtype
        self.dim = self.actor.genome.dim
        if self.dim == 0:
            raise PlasticRLError("the genome has no searched parameters; check policy.genome.search / fix")
        self.obs_dim, self.act_dim = self.actor.obs_dim, self.actor.act_dim
        self.low = self.actor.action_low
        self.high = self.actor.action_high
        p = self.ppo
        init_gen = torch.Generator().manual_seed(derive_seed(config.seed, 0, Stream.PPO_INIT))
        genome = self.actor.initial_genome(1).detach().clone()
        if config.train.init_noise > 0:
            genome = genome + config.train.init_noise * torch.randn(genome.shape, generator=init_gen,
                                                                    dtype=genome.dtype).to(genome.device)
        self.genome = torch.nn.Parameter(genome)
        self.log_std = torch.nn.Parameter(torch.full((self.act_dim,), p.log_std_init, dtype=self.dtype,
                                                     device=self.device))
        self.critic = ValueMLP(self.obs_dim, p.critic_hidden, init_gen, self.dtype, self.device)
        self.optimizer = torch.optim.Adam([
            {"params": [self.genome, self.log_std], "lr": p.lr, "base_lr": p.lr},
            {"params": list(self.critic.parameters()), "lr": p.critic_lr, "base_lr": p.critic_lr},
        ], eps=1e-5)

    # -- state ---------------------------------------------------------------------------
    def _fresh_state(self) -> PPOState:
        cfg = self.config
        return PPOState(
            obs_norm=(ObsNormalizer(self.obs_dim, cfg.train.obs_clip, std_floor=cfg.train.obs_std_floor)
                      if cfg.train.obs_norm else None),
            ret_norm=ObsNormalizer(1, clip=math.inf), wandb_id=default_wandb_id(self.run_dir))

    def _save_checkpoint(self, state: PPOState) -> None:
        payload = {
            "format": CHECKPOINT_FORMAT,
            "genome": self.genome.detach().cpu().clone(),
            "log_std": self.log_std.detach().cpu().clone(),
            "critic": {k: v.detach().cpu().clone() for k, v in self.critic.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "obs_norm": state.obs_norm.state_dict() if state.obs_norm is not None else None,
            "ret_norm": state.ret_norm.state_dict(),
            **state.counters(),
        }
        atomic_torch_save(self.run_dir / CHECKPOINT_FILE, payload)

    def _load_checkpoint(self) -> PPOState:
        payload = load_checkpoint_payload(self.run_dir, CHECKPOINT_FORMAT, " (was this run trained with trainer: ppo?)")
        with torch.no_grad():
            self.genome.copy_(payload["genome"])
            self.log_std.copy_(payload["log_std"])
        self.critic.load_state_dict(payload["critic"])
        self.optimizer.load_state_dict(payload["optimizer"])
        return PPOState(
            obs_norm=ObsNormalizer.from_state_dict(payload["obs_norm"]) if payload["obs_norm"] else None,
            ret_norm=ObsNormalizer.from_state_dict(payload["ret_norm"]), **PPOState.counters_from(payload))

    def _seed(self, update: int, stream: int) -> int:
        return derive_env_seed(self.config.seed, update, stream)

    def _reset_options(self, update: int) -> dict[str, Any] | None:
        return training_reset_options(self.config, self.ppo.num_envs, self._seed(update, Stream.PPO_TRAIN_PERTURBATION))

    # -- rollout -------------------------------------------------------------------------
    @torch.no_grad()
    def collect(self, update: int, obs_norm: ObsNormalizer | None) -> Rollout:
        """Run ``rollout_steps`` control steps of the current policy in ``num_envs`` fresh episodes."""
        p = self.ppo
        N, T, L = p.num_envs, p.rollout_steps, p.seq_len
        policy, env = self.actor, self.env
        policy.load_genome(self.genome.detach(), episodes_per_member=N)
        noise_gen = torch.Generator(device=self.device).manual_seed(self._seed(update, Stream.PPO_NOISE))
        options = self._reset_options(update)
        seed = self._seed(update, Stream.PPO_ENV)
        obs, _ = env.reset(seed=seed, options=options) if options else env.reset(seed=seed)
        dev, dt = self.device, self.dtype
        std = self.log_std.detach().exp()
        keys = ("obs", "means", "actions", "log_probs", "rewards", "terminated", "done", "reset_after", "valid")
        buf: dict[str, list[torch.Tensor]] = {k: [] for k in keys}
        snaps = []
        prev_done = torch.zeros(N, dtype=torch.bool)
        ep_return = torch.zeros(N, dtype=torch.float64)
        ep_length = torch.zeros(N, dtype=torch.long)
        returns, lengths = [], []
        count, total, total_sq = 0.0, torch.zeros(self.obs_dim, dtype=torch.float64), \
            torch.zeros(self.obs_dim, dtype=torch.float64)
        low64, high64 = self.low.cpu().double().numpy(), self.high.cpu().double().numpy()
        for t in range(T):
            raw = torch.as_tensor(np.asarray(obs), dtype=torch.float64).reshape(N, self.obs_dim)
            valid = ~prev_done
            live = raw[valid]
            count += float(live.shape[0])
            total += live.sum(0)
            total_sq += (live * live).sum(0)
            x = (obs_norm.normalise(raw) if obs_norm is not None else raw).to(device=dev, dtype=dt)
            if t % L == 0:
                snaps.append(state_tree.snapshot(policy.episode_state()))
            mean = policy.act(x)
            noise = torch.randn(mean.shape, generator=noise_gen, device=dev, dtype=dt)
            action = mean + std * noise
            log_prob = gaussian_log_prob(action, mean, self.log_std.detach())
            sent = np.clip(action.cpu().double().numpy(), low64, high64)
            obs, reward, terminated, truncated, _ = env.step(sent)
            reward_t = torch.as_tensor(np.asarray(reward), dtype=torch.float64).reshape(N)
            policy.learn(reward_t.to(device=dev, dtype=dt))
            term = torch.as_tensor(np.asarray(terminated)).reshape(N)
            done = term | torch.as_tensor(np.asarray(truncated)).reshape(N)
            # After a done the next step is the env's autoreset: the policy acts on the final
            # observation there, so it is reset again once that step is over.
            reset_after = done | prev_done
            policy.reset(reset_after.to(dev))
            ep_return += torch.where(valid, reward_t, torch.zeros_like(reward_t))
            ep_length += valid.long()
            for i in torch.nonzero(done & valid).reshape(-1).tolist():
                returns.append(float(ep_return[i]))
                lengths.append(int(ep_length[i]))
            ep_return[done] = 0.0
            ep_length[done] = 0
            for key, value in zip(keys, (x, mean, action, log_prob, reward_t, term, done, reset_after, valid)):
                buf[key].append(value)
            prev_done = done
        raw = torch.as_tensor(np.asarray(obs), dtype=torch.float64).reshape(N, self.obs_dim)
        last = (obs_norm.normalise(raw) if obs_norm is not None else raw).to(device=dev, dtype=dt)
        data = {k: torch.stack(v).to(dev) for k, v in buf.items()}
        data["rewards"] = data["rewards"].to(dt)
        return Rollout(**data, last_obs=last, snapshots=state_tree.stack(snaps), episode_returns=returns,
                       episode_lengths=lengths, obs_moments=ObsBatchMoments(count, total, total_sq))

    # -- advantages -------------------------------------------------------------------------
    def _scaled_rewards(self, ro: Rollout, ret_norm: ObsNormalizer) -> torch.Tensor:
        """Rewards divided by the running std of the discounted return (updated with this batch)."""
        p = self.ppo
        if not p.reward_norm:
            return ro.rewards
        running = torch.zeros_like(ro.rewards[0], dtype=torch.float64)
        seen = []
        for t in range(ro.rewards.shape[0]):
            running = running * p.gamma + ro.rewards[t].double()
            seen.append(running[ro.valid[t]])
            running = torch.where(ro.done[t], torch.zeros_like(running), running)
        seen_t = torch.cat(seen).reshape(-1, 1).cpu()
        ret_norm.update(ObsBatchMoments(float(seen_t.shape[0]), seen_t.sum(0), (seen_t * seen_t).sum(0)))
        scale = 1.0 / math.sqrt(float(ret_norm.var[0]) + 1e-8)
        return (ro.rewards * scale).clamp(-p.reward_clip, p.reward_clip)

    @torch.no_grad()
    def advantages(self, ro: Rollout, rewards: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(advantages, returns, values)``, each ``[T, N]``."""
        values = self.critic(ro.obs)
        next_values = torch.cat([values[1:], self.critic(ro.last_obs).unsqueeze(0)])
        adv, ret = gae(rewards, values, next_values, ro.terminated, ro.done, self.ppo.gamma, self.ppo.gae_lambda)
        return adv, ret, values

    # -- update ------------------------------------------------------------------------------
    def replay(self, ro: Rollout, chunk: torch.Tensor, row: torch.Tensor, with_grad: bool = True) -> torch.Tensor:
        """Re-run sequences ``(chunk[i], row[i])`` from their snapshots; the means ``[L, M, act]``."""
        L = self.ppo.seq_len
        policy = self.learner
        flat = self.genome if with_grad else self.genome.detach()
        M = int(chunk.numel())
        if policy.num_rows != M:
            policy.load_genome(flat, episodes_per_member=M)
        else:
            policy.reload_parameters(flat)  # the previous backward freed the parameter views' graph
        stored = state_tree.gather(ro.snapshots, chunk, row)
        weights = getattr(policy, "initial_weights", None)
        policy.set_episode_state(state_tree.restore(stored, weights if with_grad else None))
        means = []
        for k in range(L):
            t = chunk * L + k
            means.append(policy.act(ro.obs[t, row]))
            policy.learn(ro.rewards[t, row])
            policy.reset(ro.reset_after[t, row])
        return torch.stack(means)

    def _update(self, ro: Rollout, adv: torch.Tensor, ret: torch.Tensor, update: int) -> dict[str, float]:
        p = self.ppo
        N, L = p.num_envs, p.seq_len
        C = p.rollout_steps // L
        S = C * N
        perm_gen = torch.Generator().manual_seed(self._seed(update, Stream.PPO_MINIBATCH))
        actor_params = [self.genome, self.log_std]
        critic_params = list(self.critic.parameters())
        stats: dict[str, list[float]] = {k: [] for k in ("pg_loss", "v_loss", "entropy", "approx_kl",
                                                         "clip_fraction", "actor_grad_norm", "critic_grad_norm")}
        skipped = 0
        stop = False
        for _ in range(p.epochs):
            order = torch.randperm(S, generator=perm_gen)
            for start in range(0, S, p.minibatch_sequences):
                seq = order[start:start + p.minibatch_sequences].to(self.device)
                chunk, row = seq // N, seq % N
                t_idx = chunk.unsqueeze(0) * L + torch.arange(L, device=self.device).unsqueeze(1)  # [L, M]
                r_idx = row.unsqueeze(0).expand_as(t_idx)
                mask = ro.valid[t_idx, r_idx]
                mb_adv = adv[t_idx, r_idx]
                if p.norm_adv:
                    mu = masked_mean(mb_adv, mask)
                    sd = masked_mean((mb_adv - mu) ** 2, mask).sqrt()
                    mb_adv = (mb_adv - mu) / (sd + 1e-8)
                means = self.replay(ro, chunk, row)
                new_lp = gaussian_log_prob(ro.actions[t_idx, r_idx], means, self.log_std)
                pg, info = clipped_surrogate(new_lp, ro.log_probs[t_idx, r_idx], mb_adv, p.clip, mask)
                vl = value_loss(self.critic(ro.obs[t_idx, r_idx]), ret[t_idx, r_idx], mask)
                ent = gaussian_entropy(self.log_std)
                loss = pg + p.vf_coef * vl - p.ent_coef * ent
                self.optimizer.zero_grad(set_to_none=True)
                if not bool(torch.isfinite(loss)):
                    skipped += 1  # a diverging replay must not poison the parameters
                    continue
                loss.backward()
                a_norm = torch.nn.utils.clip_grad_norm_(actor_params, p.max_grad_norm)
                c_norm = torch.nn.utils.clip_grad_norm_(critic_params, p.max_grad_norm)
                if not (bool(torch.isfinite(a_norm)) and bool(torch.isfinite(c_norm))):
                    skipped += 1
                    continue
                self.optimizer.step()
                for key, value in (("pg_loss", pg), ("v_loss", vl), ("entropy", ent), ("approx_kl", info["approx_kl"]),
                                   ("clip_fraction", info["clip_fraction"]), ("actor_grad_norm", a_norm),
                                   ("critic_grad_norm", c_norm)):
                    stats[key].append(float(value.detach()) if isinstance(value, torch.Tensor) else float(value))
                if p.target_kl is not None and float(info["approx_kl"]) > p.target_kl:
                    stop = True
                    break
            if stop:
                break
        out = {k: (float(np.mean(v)) if v else float("nan")) for k, v in stats.items()}
        out["skipped_minibatches"] = skipped
        return out

    def _set_lr(self, update: int) -> None:
        frac = 1.0 - update / self.config.train.generations if self.ppo.anneal_lr else 1.0
        for group in self.optimizer.param_groups:
            group["lr"] = group["base_lr"] * max(frac, 0.0)

    # -- evaluation and agents -----------------------------------------------------------------
    def evaluate(self, obs_norm: ObsNormalizer | None) -> tuple[float, float]:
        """Mean and std return of the deterministic policy (the mean action, as deployed) on
        fixed held-out seeds, so every evaluation sees the same episodes."""
        E = self.config.train.eval_episodes
        res = rollout(self.eval_policy, self.eval_env, self.genome.detach(), E,
                      seed=derive_env_seed(self.config.seed, 0, Stream.PPO_EVAL_ENV), obs_norm=obs_norm)
        return res.return_stats(0)

    def _save_agent(self, name: str, genome: torch.Tensor, state: PPOState, eval_return: float) -> Path:
        meta = training_metadata(self.config, self.run_dir, state.generation, state.env_steps, eval_return,
                                 trainer="ppo", log_std=self.log_std.detach().cpu().tolist())
        return save_agent(self.run_dir / name, self.eval_policy, config_to_dict(self.config)["policy"],
                          genome.reshape(-1), state.obs_norm, meta)

    # -- the lifecycle's hooks ---------------------------------------------------------------------
    @property
    def policy_kernel(self) -> str:
        return self.actor.kernel

    def close(self) -> None:
        self.env.close()
        self.eval_env.close()

    def _is_scheduled_eval(self, step: int) -> bool:
        return step % self.schedule.eval_every == 0 or step == self.schedule.steps

    def _current_genome(self, state: PPOState) -> torch.Tensor:
        return self.genome.detach().cpu()[0].clone()

    def _evaluate(self, genome: torch.Tensor, state: PPOState) -> tuple[float, float]:
        return self.evaluate(state.obs_norm)  # the actor's genome is ``genome``

    def _summary_extra(self, state: PPOState) -> dict[str, Any]:
        return {"genome_dim": self.dim}

    def _step(self, state: PPOState) -> dict[str, Any]:
        """One update: collect a rollout, advantages, truncated-BPTT epochs; merge the statistics."""
        p = self.ppo
        t0 = time.perf_counter()
        update = state.generation
        self._set_lr(update)
        ro = self.collect(update, state.obs_norm)
        rollout_seconds = time.perf_counter() - t0
        adv, ret, values = self.advantages(ro, self._scaled_rewards(ro, state.ret_norm))
        stats = self._update(ro, adv, ret, update)
        if state.obs_norm is not None:
            state.obs_norm.update(ro.obs_moments)
        steps = p.num_envs * p.rollout_steps
        state.generation = g = update + 1
        state.env_steps += steps
        valid = ro.valid
        var_ret = float(ret[valid].var())
        explained = float("nan") if var_ret == 0 else 1.0 - float((ret - values)[valid].var()) / var_ret
        episodes = ro.episode_returns
        return {
            "generation": g, "update": g, "env_steps": state.env_steps,
            "episodes": len(episodes),
            "fitness_mean": float(np.mean(episodes)) if episodes else float("nan"),
            "fitness_max": float(np.max(episodes)) if episodes else float("nan"),
            "episode_length_mean": float(np.mean(ro.episode_lengths)) if episodes else float("nan"),
            "explained_variance": explained, "std_mean": float(self.log_std.detach().exp().mean()),
            "lr": self.optimizer.param_groups[0]["lr"], **stats,
            "rollout_steps_per_s": steps / max(rollout_seconds, 1e-9),
        }
