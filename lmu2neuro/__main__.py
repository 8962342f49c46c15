"""`python -m lmu2neuro` (and `torchrun ... -m lmu2neuro`) runs the command line."""

import sys

from lmu2neuro.cli import main

sys.exit(main())
