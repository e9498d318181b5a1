"""Seed studies that the controllers do not use: LIF neural sampling and mixing (``sampling``),
contrastive-Hebbian and CSDP digits with phase schedules (``contrastive``), supervised BPTT tasks
(``bptt``). They build on the core (neurons, STP, rules, policies); the core never imports them
(an import-linter contract in pyproject.toml checks it)."""
