"""``python -m vaurienclient ARGS``: the ``vaurienctl`` command."""
import sys

from vaurienclient.ctl import main

sys.exit(main())
