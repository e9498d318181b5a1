"""Recurrent PPO (truncated BPTT through the plastic spiking policy) on the shared run lifecycle."""
