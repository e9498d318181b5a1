"""Per-instance runtime perturbations: action noise/delay, stuck actuators, pushes, and sensing
(noise, dropout, stuck sensors, delay), vectorised over instances with per-instance parameters.

Timing convention (see spec.py): ``t`` is the number of env steps an instance has taken in its
episode before the current ``step()``. An action-side effect with ``start_step=s`` changes the
transitions with ``t >= s``. Observation ``j`` (``j=0`` the reset observation, ``j=t+1`` the one
returned by the step taken at ``t``) is affected iff ``j > s``, or ``s == 0`` (from reset).

Pipelines: control = agent action -> delay -> noise -> stuck override (MuJoCo clamps to the
control range). Observation = true observation -> delay -> stuck -> dropout -> noise. Rewards and
terminations always use the true state; the control cost uses the agent's action.
Each instance draws noise from its own generator (spawned from its reset seed), so an
instance's noise does not depend on the batch it runs in.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import mujoco
import numpy as np

from ..errors import EnvError
from .dynamics import actuators
from .spec import MAX_DELAY, Perturbation

RUNTIME = frozenset({"action_noise", "action_delay", "stuck_actuator", "push", "obs_noise",
                     "obs_dropout", "stuck_sensor", "obs_delay"})
_NEVER = np.iinfo(np.int64).max


class Runtime:
    """Runtime perturbation state for ``n`` instances with ``nu`` controls and ``obs_dim`` obs."""

    def __init__(self, n: int, nu: int, obs_dim: int) -> None:
        self.n, self.nu, self.obs_dim = n, nu, obs_dim
        f = lambda: np.zeros(n)  # noqa: E731
        s = lambda: np.full(n, _NEVER, dtype=np.int64)  # noqa: E731
        self.act_std, self.act_std_start = f(), s()
        self.act_delay, self.act_delay_start = np.zeros(n, dtype=np.int64), s()
        self.stuck_act = np.zeros((n, nu), dtype=bool)
        self.stuck_act_value = np.full((n, nu), np.nan)
        self.stuck_act_held = np.zeros((n, nu))
        self.stuck_act_start = s()
        self.push_force = np.zeros((n, 3))
        self.push_body = np.zeros(n, dtype=np.int64)
        self.push_duration = np.ones(n, dtype=np.int64)
        self.push_period = np.zeros(n, dtype=np.int64)
        self.push_start = s()
        self.obs_std, self.obs_std_start = f(), s()
        self.obs_p, self.obs_p_start = f(), s()
        self.stuck_obs = np.zeros((n, obs_dim), dtype=bool)
        self.stuck_obs_value = np.zeros((n, obs_dim))
        self.stuck_obs_start = s()
        self.obs_delay, self.obs_delay_start = np.zeros(n, dtype=np.int64), s()
        self._act_hist = np.zeros((n, 1, nu))
        self._obs_hist = np.zeros((n, 1, obs_dim))
        self._last_ctrl = np.zeros((n, nu))
        self._pushing = np.zeros(n, dtype=bool)
        self.rngs: list[np.random.Generator | None] = [None] * n
        self.acts_on_actions = self.acts_on_obs = self.pushes = False

    # --- configuration -------------------------------------------------------------------------
    def clear(self, i: int) -> None:
        """Remove every runtime effect of instance ``i``."""
        for name in ("act_std_start", "act_delay_start", "stuck_act_start", "push_start",
                     "obs_std_start", "obs_p_start", "stuck_obs_start", "obs_delay_start"):
            getattr(self, name)[i] = _NEVER
        self.stuck_act[i] = False
        self.stuck_obs[i] = False

    def configure(self, i: int, perturbations: Iterable[Perturbation], model: mujoco.MjModel,
                  torso: str) -> None:
        """Set instance ``i``'s runtime effects (call at reset, after :meth:`clear`)."""
        for p in perturbations:
            s = p.start_step
            if p.name == "action_noise":
                self.act_std[i], self.act_std_start[i] = p["std"], s
            elif p.name == "action_delay":
                self.act_delay[i], self.act_delay_start[i] = p["steps"], s
                self._ensure_history("_act_hist")
            elif p.name == "stuck_actuator":
                idx = actuators(model, p["actuator"])
                self.stuck_act[i, idx] = True
                self.stuck_act_value[i] = np.nan if p["value"] is None else p["value"]
                self.stuck_act_start[i] = s
            elif p.name == "push":
                name = p["body"] or torso
                body = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, name)
                if body < 1:
                    names = [model.body(b).name for b in range(1, model.nbody)]
                    raise EnvError(f"unknown push body {name!r}; valid choices: {', '.join(names)}")
                az = np.deg2rad(p["direction_deg"])
                unit = np.array([np.cos(az), np.sin(az), 0.0])
                unit[np.abs(unit) < 1e-12] = 0.0  # exact axes for 90/180/270 degrees
                self.push_force[i] = p["force"] * unit
                self.push_body[i], self.push_start[i] = body, s
                self.push_duration[i], self.push_period[i] = p["duration"], p["period"]
            elif p.name == "obs_noise":
                self.obs_std[i], self.obs_std_start[i] = p["std"], s
            elif p.name == "obs_dropout":
                self.obs_p[i], self.obs_p_start[i] = p["p"], s
            elif p.name == "stuck_sensor":
                idx = p["index"]
                if idx == "all":
                    self.stuck_obs[i] = True
                else:
                    items = np.atleast_1d(np.array(idx, dtype=object))
                    if not all(isinstance(k, (int, np.integer)) and 0 <= k < self.obs_dim
                               for k in items):
                        raise EnvError(f"stuck_sensor.index={idx!r} invalid; valid choices: "
                                       f"'all' or indices 0..{self.obs_dim - 1}")
                    self.stuck_obs[i, items.astype(int)] = True
                self.stuck_obs_start[i] = s
            elif p.name == "obs_delay":
                self.obs_delay[i], self.obs_delay_start[i] = p["steps"], s
                self._ensure_history("_obs_hist")

    def _ensure_history(self, name: str) -> None:
        """Allocate a ring buffer long enough for any allowed delay (once, so that other
        instances' histories survive a partial reset that configures a delay)."""
        hist = getattr(self, name)
        if hist.shape[1] < MAX_DELAY + 1:
            setattr(self, name, np.zeros((hist.shape[0], MAX_DELAY + 1, hist.shape[2])))

    def refresh(self) -> None:
        """Recompute the summary flags that let the nominal hot path skip all runtime work
        (call after :meth:`clear`/:meth:`configure`)."""
        self.acts_on_actions = bool(
            (self.act_std_start < _NEVER).any() or (self.act_delay_start < _NEVER).any()
            or (self.stuck_act_start < _NEVER).any())
        self.acts_on_obs = bool(
            (self.obs_std_start < _NEVER).any() or (self.obs_p_start < _NEVER).any()
            or (self.stuck_obs_start < _NEVER).any() or (self.obs_delay_start < _NEVER).any())
        self.pushes = bool((self.push_start < _NEVER).any() or self._pushing.any())

    def reset_episode(self, i: int) -> None:
        """Forget instance ``i``'s histories at an episode start."""
        self._act_hist[i] = 0.0
        self._obs_hist[i] = 0.0
        self._last_ctrl[i] = 0.0

    # --- action side ---------------------------------------------------------------------------
    def controls(self, actions: np.ndarray, t: np.ndarray, stepping: np.ndarray) -> np.ndarray:
        """Controls applied to the physics for agent ``actions`` at per-instance step ``t``."""
        ctrl = np.array(actions, dtype=np.float64)
        h = self._act_hist.shape[1]
        if h > 1:
            rows = np.flatnonzero(stepping)
            self._act_hist[rows, t[rows] % h] = ctrl[rows]
            on = np.flatnonzero(stepping & (t >= self.act_delay_start) & (self.act_delay > 0))
            src = t[on] - self.act_delay[on]
            ctrl[on] = np.where((src >= 0)[:, None], self._act_hist[on, src % h], 0.0)
        on = stepping & (t >= self.act_std_start) & (self.act_std > 0)
        for i in np.flatnonzero(on):
            ctrl[i] += self.act_std[i] * self.rngs[i].standard_normal(self.nu)
        onset = stepping & (t == self.stuck_act_start)
        for i in np.flatnonzero(onset):
            value = self.stuck_act_value[i]
            self.stuck_act_held[i] = np.where(np.isnan(value), self._last_ctrl[i], value)
        on = (stepping & (t >= self.stuck_act_start))[:, None] & self.stuck_act
        ctrl = np.where(on, self.stuck_act_held, ctrl)
        self._last_ctrl[stepping] = ctrl[stepping]
        return ctrl

    def apply_pushes(self, xfrc: Sequence[np.ndarray], t: np.ndarray, stepping: np.ndarray) -> None:
        """Set ``xfrc[i]`` (instance ``i``'s ``xfrc_applied``) on pushed bodies for this step;
        clear pushes that ended."""
        since = t - self.push_start
        in_window = stepping & (since >= 0)
        phase = np.where(self.push_period > 0, since % np.maximum(self.push_period, 1), since)
        pushing = in_window & (phase < self.push_duration)
        for i in np.flatnonzero(self._pushing & ~pushing):
            xfrc[i][:] = 0.0
        for i in np.flatnonzero(pushing):
            xfrc[i][:] = 0.0
            xfrc[i][self.push_body[i], :3] = self.push_force[i]
        self._pushing = pushing

    # --- observation side ----------------------------------------------------------------------
    def observations(self, obs: np.ndarray, j: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Perturbed copy of true observations ``obs`` (index ``j`` per instance) for ``rows``
        (instances that produced a new observation); other rows are returned unchanged."""
        out = obs.copy()
        h = self._obs_hist.shape[1]
        if h > 1:
            self._obs_hist[rows, j[rows] % h] = obs[rows]

        def on(start: np.ndarray) -> np.ndarray:
            return rows & ((j > start) | (start == 0))

        if h > 1:
            late = np.flatnonzero(on(self.obs_delay_start) & (self.obs_delay > 0))
            # Before the episode start the reset observation stands in.
            src = np.maximum(j[late] - self.obs_delay[late], 0)
            out[late] = self._obs_hist[late, src % h]
        start = self.stuck_obs_start
        configured = start < _NEVER
        first = np.where(start == 0, 0, np.where(configured, start, 0) + 1)  # first affected j
        onset = rows & configured & (j == first)
        self.stuck_obs_value[onset] = out[onset]
        held = on(self.stuck_obs_start)[:, None] & self.stuck_obs
        out = np.where(held, self.stuck_obs_value, out)
        for i in np.flatnonzero(on(self.obs_p_start) & (self.obs_p > 0)):
            out[i, self.rngs[i].random(self.obs_dim) < self.obs_p[i]] = 0.0
        for i in np.flatnonzero(on(self.obs_std_start) & (self.obs_std > 0)):
            out[i] += self.obs_std[i] * self.rngs[i].standard_normal(self.obs_dim)
        return out
