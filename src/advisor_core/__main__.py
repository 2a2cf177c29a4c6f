"""``python -m advisor_core``: the ``advisor`` command."""

import sys

from advisor_core.cli.main import main

sys.exit(main())
