"""``python -m neurograph``: the command line (see :mod:`neurograph.cli`)."""

import sys

from neurograph.cli import main

sys.exit(main())
