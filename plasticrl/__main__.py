"""``python -m plasticrl``: the same command line as the ``plasticrl`` script."""
from plasticrl.cli import main

main()
