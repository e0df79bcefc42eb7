"""`python -m tunesmith.cli`: the same as the `tunesmith` command."""

import sys

from tunesmith.cli import main

sys.exit(main())
