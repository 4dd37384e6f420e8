"""`python -m meshflow_nb` runs the command line."""

import sys

from .cli import main

sys.exit(main())
