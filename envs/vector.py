"""The batched MuJoCo vector env: Gymnasium's VectorEnv API over a :class:`PhysicsPool`.

Semantics match ``gymnasium.make_vec(env_id, n, vectorization_mode="sync")`` with the default
next-step autoreset: an instance that terminated or truncated is reset on the following ``step``
(its action ignored, reward 0, both flags False); ``reset(seed=s)`` seeds instance ``i`` with
``s + i``; each instance owns its own ``np.random.Generator`` used only for reset noise, drawn in
Gymnasium's order; TimeLimit truncation after ``max_episode_steps`` steps.
"""
from __future__ import annotations

import copy
from typing import Any

import mujoco
import numpy as np
from gymnasium import spaces
from gymnasium.utils.seeding import np_random
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from .compiled_step import CompiledStep
from .engine import CompiledPhysicsPool, make_physics_pool
from .errors import EnvError
from .perturb import dynamics, morphology
from .perturb.runtime import Runtime
from .perturb.spec import Perturbation, parse
from .perturb.suites import expand_condition_names
from .registry import EnvConfig
from .tasks.adaptation import GoalTask, goal_generator

_NEVER = np.iinfo(np.int64).max


class MujocoVectorEnv(VectorEnv):
    """``num_envs`` instances of one MuJoCo v5 task, stepped in parallel on threads.

    Build it with :func:`plasticrl.envs.make_vec`. ``infos`` carry the task's per-step terms
    (``x_position``, ``reward_forward``, ...) as arrays with ``_key`` masks marking the
    instances that stepped (not those being autoreset), plus ``perturbation`` (per instance,
    the list of perturbation dicts of its condition) and ``perturbation_active`` (bool per
    instance: has any of its perturbations started by the returned observation) and, after a
    step, ``unstable`` (bool per instance: MuJoCo found the simulation unstable this episode, warned
    ``mjWARN_BADQACC`` and reset its state, so the episode's returns are not physics).

    Perturbations: ``perturbation=`` at construction sets the default condition of every
    instance. ``reset(options={"perturbation": spec})`` gives the reset instances ``spec``
    instead; ``options={"perturbations": [spec_0, ..., spec_{n-1}]}`` one spec per instance.
    A ``reset`` without these options returns the reset instances to the default condition.
    Autoresets keep each instance's condition, and mid-episode switches re-arm every episode.

    Adaptation tasks (:mod:`plasticrl.envs.tasks.adaptation`): each reset draws the instance's
    goal schedule from its goal generator; ``infos`` carry ``goal`` (the goal in force for the
    returned observation and reward) and ``goal_switch_step`` (the episode's switch step, -1 if
    none) for every instance, at reset and at every step.
    """

    metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, config: EnvConfig, num_envs: int, num_threads: int | None = None,
                 perturbation: Any = None, physics_backend: str = "auto") -> None:
        if not isinstance(num_envs, int) or num_envs < 1:
            raise EnvError(f"num_envs must be a positive int, got {num_envs!r}")
        if num_threads is not None and (not isinstance(num_threads, int) or num_threads < 1):
            raise EnvError(f"num_threads must be a positive int or None, got {num_threads!r}")
        self.config = config
        self.num_envs = num_envs
        self.render_mode = None
        self.spec = None
        base = config.load_model()
        self.task = config.task_cls(base, **config.task_kwargs)
        self.base_model = base
        # Instances never share the pristine base: perturbations replace an instance's model.
        models = [copy.copy(base) for _ in range(num_envs)]
        self.pool = make_physics_pool(models, self.task.fields, config.frame_skip,
                                      self.task.needs_post_constraint, num_threads, physics_backend)
        self.dt = float(base.opt.timestep * config.frame_skip)
        self.max_episode_steps = config.max_episode_steps
        # Gymnasium's init_qpos/init_qvel are the freshly allocated MjData's qpos/qvel.
        fresh = mujoco.MjData(base)
        self.init_qpos = np.tile(fresh.qpos, (num_envs, 1))
        self.init_qvel = np.tile(fresh.qvel, (num_envs, 1))
        self.pool.arrays["body_mass"] = np.stack([m.body_mass for m in self.pool.models])

        low, high = base.actuator_ctrlrange.copy().astype(np.float32).T
        self.single_action_space = spaces.Box(low=low, high=high, dtype=np.float32)
        self.single_observation_space = spaces.Box(-np.inf, np.inf, (self.task.obs_dim,),
                                                   np.float64)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.observation_space = batch_space(self.single_observation_space, num_envs)

        self._rngs: list[np.random.Generator | None] = [None] * num_envs
        self._elapsed = np.zeros(num_envs, dtype=np.int64)
        self._autoreset = np.zeros(num_envs, dtype=bool)
        self._obs = np.zeros((num_envs, self.task.obs_dim))
        self._before: np.ndarray | None = None
        self._started = False
        self._step_context: tuple | None = None  # set between step_async and step_wait
        self._compiled_outputs: tuple | None = None  # compiled_step's output buffers, made at its first call

        self.runtime = Runtime(num_envs, base.nu, self.task.obs_dim)
        self._conditions: list[tuple[Perturbation, ...]] = [()] * num_envs
        #: The edits each instance's current model was built with (() = pristine copy).
        self._model_edits: list[tuple[Perturbation, ...]] = [()] * num_envs
        self._switches: list[frozenset[int]] = [frozenset()] * num_envs
        self._first_start = np.full(num_envs, _NEVER, dtype=np.int64)
        self._any_switch = False
        self._echo = np.empty(num_envs, dtype=object)
        self._echo[:] = [[] for _ in range(num_envs)]
        self._morph_cache: dict[tuple[Perturbation, ...], mujoco.MjModel] = {}
        self._scratch = mujoco.MjData(base)
        self._default = self._parse(perturbation)
        self._validate(self._default)

        self.has_goal = isinstance(self.task, GoalTask)
        if self.has_goal:
            self._goal_rngs: list[np.random.Generator | None] = [None] * num_envs
            self._goal_first = np.zeros(num_envs)
            self._goal_second = np.zeros(num_envs)
            self._goal_switch = np.full(num_envs, -1, dtype=np.int64)

    # --- perturbations ------------------------------------------------------------------------
    def _parse(self, spec: Any) -> tuple[Perturbation, ...]:
        """A perturbation spec, suite condition names (``dead_actuator_mid@mild``) included."""
        return parse(expand_condition_names(self.config.env_id, spec))

    def _validate(self, condition: tuple[Perturbation, ...]) -> None:
        """Fail early (at construction/reset, naming the problem) rather than mid-run."""
        morph = [p for p in condition if p.kind == "morphology"]
        if morph:
            self._variant(tuple(morph))
        scratch = copy.copy(self.base_model)
        dynamics.apply(scratch, [p for p in condition if p.name in dynamics.MODEL_EDITS],
                       self._scratch)
        probe = Runtime(1, self.base_model.nu, self.task.obs_dim)
        probe.configure(0, condition, self.base_model, self.task.torso)

    def _variant(self, morph: tuple[Perturbation, ...]) -> mujoco.MjModel:
        if morph not in self._morph_cache:
            self._morph_cache[morph] = morphology.compile_variant(
                self.config.xml_path, self.config.env_id, morph)
        return self._morph_cache[morph]

    def _build_model(self, i: int, t: int) -> None:
        """Give instance ``i`` the model of its condition with the edits started by step ``t``
        (a no-op when its current model already has exactly those edits)."""
        edits = tuple(p for p in self._conditions[i]
                      if (p.kind == "morphology" or p.name in dynamics.MODEL_EDITS)
                      and p.start_step <= t)
        if edits == self._model_edits[i]:
            return
        morph = tuple(p for p in edits if p.kind == "morphology")
        model = copy.copy(self._variant(morph) if morph else self.base_model)
        dynamics.apply(model, [p for p in edits if p.name in dynamics.MODEL_EDITS], self._scratch)
        self.pool.set_model(i, model)
        self.pool.arrays["body_mass"][i] = model.body_mass
        self._model_edits[i] = edits

    def _set_condition(self, i: int, condition: tuple[Perturbation, ...]) -> None:
        self._conditions[i] = condition
        self._switches[i] = frozenset(
            p.start_step for p in condition
            if (p.kind == "morphology" or p.name in dynamics.MODEL_EDITS) and p.start_step > 0)
        self._first_start[i] = min((p.start_step for p in condition), default=_NEVER)
        self._echo[i] = [p.to_dict() for p in condition]
        self.runtime.clear(i)
        self.runtime.configure(i, condition, self.base_model, self.task.torso)
        self.runtime.refresh()
        self._any_switch = any(self._switches)

    def _conditions_from(self, options: dict[str, Any], mask: np.ndarray) -> dict[int, tuple]:
        if "perturbation" in options and "perturbations" in options:
            raise EnvError("give either options['perturbation'] (all reset instances) or "
                           "options['perturbations'] (one per instance), not both")
        if "perturbations" in options:
            specs = list(options.pop("perturbations"))
            if len(specs) != self.num_envs:
                raise EnvError(f"options['perturbations'] has {len(specs)} entries; expected "
                               f"num_envs={self.num_envs}")
            parsed = [self._parse(x) for x in specs]
        else:
            one = self._parse(options.pop("perturbation")) if "perturbation" in options else self._default
            parsed = [one] * self.num_envs
        checked: set[tuple[Perturbation, ...]] = set()
        for i in np.flatnonzero(mask):
            if parsed[i] not in checked:
                self._validate(parsed[i])
                checked.add(parsed[i])
        return {int(i): parsed[i] for i in np.flatnonzero(mask)}

    # --- helpers ------------------------------------------------------------------------------
    def _reset_instances(self, ids: list[int], seeds: list[int | None]) -> None:
        """Reset instances ``ids`` (``seeds[k]`` for ``ids[k]``); one engine call for all of them."""
        qpos, qvel = [], []
        for i, seed in zip(ids, seeds):
            if seed is not None or self._rngs[i] is None:
                # Same generator construction as gymnasium.Env.reset(seed=...).
                self._rngs[i], _ = np_random(seed)
                # Perturbation noise gets its own stream, spawned from the reset seed without
                # drawing from the reset-noise generator (which must match Gymnasium's).
                child = self._rngs[i].bit_generator.seed_seq.spawn(1)[0]
                self.runtime.rngs[i] = np.random.Generator(np.random.PCG64(child))
                if self.has_goal:
                    self._goal_rngs[i] = goal_generator(self._rngs[i])
            self._build_model(i, 0)
            q, v = self.task.reset_noise(self._rngs[i], self.init_qpos[i], self.init_qvel[i])
            if self.has_goal:
                self._goal_first[i], self._goal_switch[i], self._goal_second[i] = \
                    self.task.schedule(self._goal_rngs[i])
            qpos.append(q)
            qvel.append(v)
            self.runtime.reset_episode(i)
            self._elapsed[i] = 0
            self._autoreset[i] = False
        if ids:
            self.pool.set_states(ids, np.stack(qpos), np.stack(qvel))

    def _set_goal(self, elapsed: np.ndarray) -> None:
        """Give the task the goal in force for the observation that follows ``elapsed`` steps of
        the episode (and for the reward of the step that produced it): the second goal once the
        step with index ``switch`` has been taken (``elapsed > switch``)."""
        switched = (self._goal_switch >= 0) & (elapsed > self._goal_switch)
        self.task.goal = np.where(switched, self._goal_second, self._goal_first)

    def _goal_infos(self, infos: dict[str, Any]) -> None:
        infos["goal"] = self.task.goal.copy()
        infos["_goal"] = np.ones(self.num_envs, dtype=bool)
        infos["goal_switch_step"] = self._goal_switch.copy()
        infos["_goal_switch_step"] = infos["_goal"]

    def _perturbation_infos(self, infos: dict[str, Any]) -> None:
        infos["perturbation"] = self._echo.copy()  # rows are replaced, never mutated
        infos["_perturbation"] = np.ones(self.num_envs, dtype=bool)
        infos["perturbation_active"] = (self._first_start < self._elapsed) | (self._first_start == 0)
        infos["_perturbation_active"] = infos["_perturbation"]

    # --- VectorEnv API ------------------------------------------------------------------------
    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset all instances, or those in ``options["reset_mask"]`` (a bool array ``[n]``).

        ``seed``: None (fresh entropy for unseeded instances, others continue their generator),
        an int ``s`` (instance ``i`` gets ``s + i``) or a list of per-instance seeds."""
        if self._step_context is not None:
            raise EnvError("reset() while a step_async() is pending; call step_wait() first")
        n = self.num_envs
        if isinstance(seed, (int, np.integer)):
            super().reset(seed=int(seed))  # seeds VectorEnv.np_random, as Gymnasium's envs do
        if seed is None:
            seeds: list[int | None] = [None] * n
        elif isinstance(seed, (int, np.integer)):
            seeds = [int(seed) + i for i in range(n)]
        else:
            seeds = list(seed)
            if len(seeds) != n:
                raise EnvError(f"seed list has length {len(seeds)}; expected num_envs={n}")
        options = dict(options or {})
        mask = options.pop("reset_mask", None)
        if mask is None:
            mask = np.ones(n, dtype=bool)
        else:
            mask = np.asarray(mask)
            if mask.shape != (n,) or mask.dtype != np.bool_ or not mask.any():
                raise EnvError(f"options['reset_mask'] must be a bool array of shape ({n},) with "
                               f"at least one True; got {mask!r}")
        conditions = self._conditions_from(options, mask)
        if options:
            raise EnvError(f"unknown reset option(s) {sorted(options)}; valid choices: "
                           "reset_mask, perturbation, perturbations")
        for i, condition in conditions.items():
            self._set_condition(i, condition)
        self._reset_instances(list(conditions), [seeds[i] for i in conditions])
        if self.has_goal:
            self._set_goal(self._elapsed)
        s = self.pool.arrays
        obs = self.task.observe(s)
        if self.runtime.acts_on_obs:
            obs = self.runtime.observations(obs, self._elapsed, mask)
        self._obs[mask] = obs[mask]
        self._before = self.task.position(s)
        self._started = True
        infos: dict[str, Any] = {}
        self._perturbation_infos(infos)
        if self.has_goal:
            self._goal_infos(infos)
        return self._obs.copy(), infos

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Advance every instance one env step (``frame_skip`` physics steps)."""
        self.step_async(actions)
        return self.step_wait()

    def step_async(self, actions: np.ndarray) -> None:
        """Start a step: the physics runs on the worker threads while the caller does other work.

        :meth:`step_wait` finishes it (the caller joins the remaining physics) and returns what
        :meth:`step` returns. With one thread the physics happens in ``step_wait``."""
        if not self._started:
            raise EnvError("call reset() before step()")
        actions = np.asarray(actions)
        expected = (self.num_envs, self.single_action_space.shape[0])
        if actions.shape != expected:
            raise EnvError(f"actions have shape {actions.shape}; expected {expected}")
        resetting = self._autoreset.copy()
        stepping = ~resetting
        any_reset = bool(resetting.any())
        t = self._elapsed.copy()  # steps taken this episode, before this one
        if self._any_switch:
            for i in np.flatnonzero(stepping):
                if t[i] in self._switches[i]:  # a model perturbation starts at this step
                    self._build_model(int(i), int(t[i]))
        ctrl = actions
        runtime = self.runtime
        if runtime.acts_on_actions:
            ctrl = runtime.controls(actions, t, stepping)
        if runtime.pushes:
            runtime.apply_pushes(self.pool.xfrc_applied, t, stepping)
        self.pool.start(ctrl, active=stepping if any_reset else None)
        self._step_context = (actions, resetting, stepping, any_reset)

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Finish the step begun by :meth:`step_async`."""
        return self._finish_step(lean=False)

    def step_wait_lean(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`step_wait` for a caller that reads no infos but MuJoCo's instability flags: returns
        ``(obs, reward, terminated, truncated, unstable)``, the same values bit for bit, with the task's
        observations, rewards and terminations from its compiled step where it has one
        (:meth:`~plasticrl.envs.tasks.base.Task.evaluate_compiled`: HalfCheetah-v5, Ant-v5 and their
        adaptation variants; the GIL released) and no info arrays built. The rollout loop steps this way."""
        return self._finish_step(lean=True)

    def _finish_step(self, lean: bool) -> tuple:
        if self._step_context is None:
            raise EnvError("step_wait() without a pending step_async()")
        actions, resetting, stepping, any_reset = self._step_context
        self._step_context = None
        runtime = self.runtime
        self.pool.finish()
        if any_reset:
            ids = [int(i) for i in np.flatnonzero(resetting)]
            self._reset_instances(ids, [None] * len(ids))
        if self.has_goal:
            # Stepping instances will have taken one more step; reset ones start at 0.
            self._set_goal(self._elapsed + stepping)
        s = self.pool.arrays
        fast = self.task.evaluate_compiled(s, self._before, actions, self.dt) if lean else None
        if fast is not None:
            obs, reward, terminated, position = fast
        else:
            obs = self.task.observe(s)
            reward, terminated, info = self.task.evaluate(s, self._before, actions, self.dt)
            reward = np.asarray(reward, dtype=np.float64)
            position = None
        self._elapsed[stepping] += 1
        if self.max_episode_steps is None:
            truncated = np.zeros(self.num_envs, dtype=bool)
        else:
            truncated = stepping & (self._elapsed >= self.max_episode_steps)
        if any_reset:
            reward[resetting] = 0.0
            terminated = terminated & stepping
        if runtime.acts_on_obs:
            obs = runtime.observations(obs, self._elapsed, np.ones(self.num_envs, dtype=bool))
        self._obs[:] = obs
        self._before = self.task.position(s) if position is None else position
        self._autoreset = terminated | truncated
        if lean:
            return obs, reward, terminated, truncated, self.pool.unstable() & stepping
        infos: dict[str, Any] = {}
        for key, value in info.items():
            infos[key] = value
            infos["_" + key] = stepping
        # MuJoCo's instability flag (it reset the state mid-episode, so observations and reward of
        # the episode are no longer physics): rollouts mark such episodes invalid.
        infos["unstable"] = self.pool.unstable() & stepping
        infos["_unstable"] = stepping
        self._perturbation_infos(infos)
        if self.has_goal:
            self._goal_infos(infos)
        return obs, reward, terminated, truncated, infos

    def compiled_step(self) -> CompiledStep | None:
        """The env's next steps as :func:`plasticrl.envs.compiled_step.env_step` takes them, or ``None``
        where they need Python: an instance awaits its reset, a step is pending, the physics is not the
        one-thread :class:`~plasticrl.envs.engine.CompiledPhysicsPool`, the task has no compiled step, or
        something changes between steps (goals, runtime perturbations, mid-episode model edits).

        Valid until the env's next Python step or reset (the caller asks again each time)."""
        if (not self._started or self._step_context is not None or self._autoreset.any() or self.has_goal
                or self._any_switch or not isinstance(self.pool, CompiledPhysicsPool)
                or self.pool.num_threads != 1):
            return None
        runtime = self.runtime
        if runtime.acts_on_actions or runtime.acts_on_obs or runtime.pushes:
            return None
        n = self.num_envs
        params = self.task.compiled_params(n, self.dt)
        if params is None or self._before is None:
            return None
        code, planar, ant = params
        # the positions are updated in place from now on (the task's position() and the compiled step hand
        # out fresh arrays, so this is already the env's own; converted only if it is not float64)
        self._before = np.ascontiguousarray(self._before, dtype=np.float64)
        x_position = self._before if self._before.ndim == 1 else np.zeros(0)
        xy_position = self._before if self._before.ndim == 2 else np.zeros((0, 2))
        arrays = self.pool.arrays
        empty3 = np.zeros((n, 0, 0))
        task = (code, arrays["qpos"], arrays["qvel"], arrays.get("xpos", empty3), arrays.get("cfrc_ext", empty3),
                planar, ant)
        if self._compiled_outputs is None:  # reward, terminated, truncated, unstable: written by each step
            self._compiled_outputs = (np.zeros(n), np.zeros(n, dtype=bool), np.zeros(n, dtype=bool),
                                      np.zeros(n, dtype=bool))
        limit = _NEVER if self.max_episode_steps is None else int(self.max_episode_steps)
        state = (self._obs, *self._compiled_outputs, self._elapsed, self._autoreset, limit, x_position,
                 xy_position)
        return CompiledStep(self.pool.step_args, task, state)

    def close_extras(self, **kwargs: Any) -> None:
        self.pool.close()

    # --- access for perturbations and tests ---------------------------------------------------
    @property
    def models(self) -> list[mujoco.MjModel]:
        """Per-instance ``MjModel`` objects (index ``i`` is instance ``i``)."""
        return self.pool.models

    @property
    def datas(self) -> list[mujoco.MjData]:
        """Per-instance ``MjData`` objects."""
        return self.pool.datas
