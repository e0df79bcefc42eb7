"""``python -m tunesmith``: what each process of a multi-process job runs (see `tunesmith.distributed.launch`)."""

import sys

from tunesmith.cli import main

sys.exit(main())
