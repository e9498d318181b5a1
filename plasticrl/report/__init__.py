"""Reports of evaluations and runs: JSON/CSV/Markdown files (``writer``), plots, training curves,
W&B tables and videos (``wandb_log``, ``render``), and rebuilding reports from saved results."""
