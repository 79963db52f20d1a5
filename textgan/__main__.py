"""`python -m textgan` (and `torchrun -m textgan`) runs the CLI."""
import sys

from textgan.cli import main

sys.exit(main())
