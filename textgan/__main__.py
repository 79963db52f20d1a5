"""`python -m textgan` (and `torchrun -m textgan`) runs the CLI."""
from textgan.cli import exit_process, main

exit_process(main())
