"""``python -m codecs_ser``: the same as the ``codecs-ser`` command."""

import sys

from ._cli import main

sys.exit(main())
