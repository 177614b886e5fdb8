"""``python -m vaurien ARGS``: the ``vaurien`` command."""
import sys

from vaurien.run import main

sys.exit(main())
