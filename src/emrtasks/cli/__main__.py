"""`python -m emrtasks.cli`: the same command line as `python -m emrtasks`."""

import sys

from emrtasks.cli import main

sys.exit(main())
