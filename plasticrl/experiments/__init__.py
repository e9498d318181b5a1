"""Whole workflows on top of training, evaluation and reports: the demo (main job), multi-agent
comparisons from an experiment spec, and the agent-files-in, report-out evaluation sequence."""
