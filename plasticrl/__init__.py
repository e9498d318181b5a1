"""plasticrl: reinforcement learning with plastic spiking controllers."""
__version__ = "0.1.0"
