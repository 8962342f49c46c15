"""`python -m lmu2neuro.cli` runs the command line."""

import sys

from lmu2neuro.cli import main

sys.exit(main())
