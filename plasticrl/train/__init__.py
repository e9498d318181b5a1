"""Training: evolution-strategies algorithms (``plasticrl.train.es``), and later the rollout loop and checkpoints."""
