"""A plugin module that calls ``sys.exit()`` as it is imported."""

import sys

sys.exit("hostile_exit_at_import: exiting at import")
