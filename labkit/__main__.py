"""``python -m labkit ...``: the command line lives in ``labkit.instructor.cli``."""

import sys

from labkit.instructor.cli import main

if __name__ == "__main__":
    sys.exit(main())
