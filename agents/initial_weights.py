"""Random initial fast weights (``policy.initial_weights.kind: random``), drawn per row.

Every draw is a pure function of a 63-bit seed:

* ``draw: per_episode``: the row's *episode seed*, :func:`plasticrl.seeding.derive_episode_seed`
  of the seed its env was reset with and the episodes run since (kept per row by
  :class:`~plasticrl.agents.base.BatchedPolicy`), mixed with ``initial_weights.seed``;
* ``draw: per_member``: a hash of the member's flat genome (its float64 bytes, so float32 and
  float64 policies agree), mixed with ``initial_weights.seed``.

The values come from a CPU ``torch.Generator`` in float64, layer after layer (each ``[out, in]``
in row-major order), and are then cast to the policy's dtype and moved to its device, so a CPU
and a CUDA policy start from the same weights.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import torch

from plasticrl.agents.config import InitialWeightsConfig
from plasticrl.agents.state import merge_rows
from plasticrl.seeding import Stream, derive_seed


class InitialWeightDraws:
    """Draws ``[rows, out, in]`` initial weights for layers of ``shapes`` from per-row seeds."""

    def __init__(self, config: InitialWeightsConfig, shapes: Sequence[tuple[int, int]],
                 device: torch.device, dtype: torch.dtype):
        self.config = config
        self.shapes = [tuple(int(d) for d in s) for s in shapes]
        self.device, self.dtype = device, dtype
        self._sizes = [out * fan_in for out, fan_in in self.shapes]
        self._total = sum(self._sizes)

    @property
    def per_episode(self) -> bool:
        """Whether the draws follow the episode seed (else they follow the member's genome)."""
        return self.config.draw == "per_episode"

    def episode_seeds_to_draw_seeds(self, episode_seeds: Sequence[int]) -> list[int]:
        """The generator seeds of rows whose episode seeds are ``episode_seeds``."""
        return [derive_seed(int(s), self.config.seed, Stream.POLICY_EPISODE_WEIGHTS) for s in episode_seeds]

    def member_draw_seeds(self, flat: torch.Tensor) -> list[int]:
        """One generator seed per member of ``flat [P, D]``: a hash of its genome's float64 bytes."""
        values = flat.detach().to(device="cpu", dtype=torch.float64).contiguous().numpy()
        seeds = []
        for row in values:
            digest = hashlib.blake2b(np.ascontiguousarray(row).tobytes(), digest_size=8).digest()
            key = int.from_bytes(digest, "little") & (2**63 - 1)
            seeds.append(derive_seed(key, self.config.seed, Stream.POLICY_MEMBER_WEIGHTS))
        return seeds

    def draw(self, seeds: Sequence[int]) -> list[torch.Tensor]:
        """Weights for one row per seed: a list over layers of ``[len(seeds), out, in]``."""
        flat = torch.empty((len(seeds), self._total), dtype=torch.float64)
        gen = torch.Generator(device="cpu")
        uniform = self.config.distribution == "uniform"
        for i, seed in enumerate(seeds):
            gen.manual_seed(int(seed))
            if uniform:
                torch.rand(self._total, generator=gen, dtype=torch.float64, out=flat[i])
            else:
                torch.randn(self._total, generator=gen, dtype=torch.float64, out=flat[i])
        flat = (flat * 2.0 - 1.0) * self.config.scale if uniform else flat * self.config.scale
        flat = flat.to(device=self.device, dtype=self.dtype)
        return [chunk.reshape(len(seeds), *shape)
                for chunk, shape in zip(torch.split(flat, self._sizes, dim=1), self.shapes)]

    def episode_rows(self, policy, mask: torch.Tensor | None,
                     current: list[torch.Tensor] | None) -> list[torch.Tensor]:
        """Per-episode initial weights of ``policy``'s rows: fresh draws from their episode seeds
        for the ``mask`` rows (all if ``None``), ``current`` elsewhere. New tensors: the old ones
        may still be the running fast weights of rows that are not reset."""
        if mask is None or current is None or current[0].shape[0] != policy.num_rows:
            return self.draw(self.episode_seeds_to_draw_seeds(policy.episode_seeds_of(None)))
        if not bool(mask.any()):
            return current
        rows = torch.nonzero(mask).reshape(-1)
        fresh = self.draw(self.episode_seeds_to_draw_seeds(policy.episode_seeds_of(mask)))
        return [w.index_copy(0, rows, f) for w, f in zip(current, fresh)]


class EpisodeWeights:
    """Mixin of the policies whose fast weights start every episode from ``self._w_init`` (evolved, or
    drawn by :class:`InitialWeightDraws` in ``self._draws``): the reset that draws per-episode weights
    for the reset rows and restores their state, and the two weight views. The fused kernel's glue
    (``self._fused``, None on the torch path) caches the initial weights for its finite guard and is
    refreshed in :meth:`_initial_weights_changed`."""

    def _reset(self, mask: torch.Tensor | None) -> None:
        if self._draws is not None and self._draws.per_episode:
            self._w_init = self._draws.episode_rows(self, mask, getattr(self, "_w_init", None))
            self._initial_weights_changed()
        fresh = self._fresh_state()
        if mask is None or not hasattr(self, "_state"):
            self._state = fresh
            return
        self._state = merge_rows(mask, fresh, self._state)

    def _initial_weights_changed(self) -> None:
        """Called after new per-episode initial weights were drawn: the fused kernel re-reads them."""
        fused = getattr(self, "_fused", None)
        if fused is not None:
            fused.set_initial_weights()

    @property
    def fast_weights(self) -> list[torch.Tensor]:
        """Current fast weights, one ``[N, out, in]`` tensor per layer."""
        return list(self._state.weights)

    @property
    def initial_weights(self) -> list[torch.Tensor]:
        """The weights the current episodes started from, one ``[N, out, in]`` tensor per layer."""
        return list(self._w_init)
