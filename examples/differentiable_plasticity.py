"""Differentiable plasticity (SpikePropamine-style) on cue association: regenerates the README table.

    OMP_NUM_THREADS=1 python examples/differentiable_plasticity.py               # default budget
    python examples/differentiable_plasticity.py --steps 50 --variants abcd static   # a quick look
    python examples/differentiable_plasticity.py --help

The experiment itself (network, variants, training budget, table) lives in
``plasticrl/studies/bptt/experiment.py`` so that the CLI can run it too; the pieces it uses are
``plasticrl.studies.bptt.tasks`` (episodes), ``plasticrl.studies.bptt.unroll`` (BPTT through the
policy) and ``plasticrl.studies.bptt.trainer`` (Adam, clipping, checkpoints, metrics).
"""
from plasticrl.studies.bptt.experiment import main

if __name__ == "__main__":
    main()
