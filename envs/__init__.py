"""Environment side of plasticrl (installed as plasticrl.envs)."""
