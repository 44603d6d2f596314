"""``python -m cai``: the ``cai`` command (see :mod:`cai.cli`)."""
import sys

from .cli import main

sys.exit(main())
