"""`python -m emrtasks`: the command line, for machines where pip's script folder is not on PATH."""

import sys

from emrtasks.cli import main

sys.exit(main())
