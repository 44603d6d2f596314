"""``python -m cai``: the ``cai`` command (see :mod:`cai.cli`)."""
import sys

from cai.cli import main

sys.exit(main())
