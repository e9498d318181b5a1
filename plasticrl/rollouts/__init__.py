"""Acting in environments: the batched episode loop, the observation normaliser, env set-up from
a config, saved agents and the controllers that evaluation drives (plasticrl agents and SB3 models).

- :func:`rollout` (``loop``): genomes ``[P, D]`` x ``E`` episodes -> returns, lengths, statistics.
- :class:`ObsNormalizer` (``obs_norm``): running mean/std, frozen within a generation.
- ``env_setup``: ``make_env`` / ``env_kwargs`` / ``training_reset_options`` of an ExperimentConfig.
- ``saved_agent``: the agent file format (policy + genome + normaliser), ``load``/``save_agent``.
- ``controllers`` / ``batch``: uniform controllers over agents and SB3 models, run in row batches.
"""
from plasticrl.rollouts.loop import RolloutResult, rollout
from plasticrl.rollouts.obs_norm import ObsNormalizer

__all__ = ["ObsNormalizer", "RolloutResult", "rollout"]
