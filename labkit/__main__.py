"""``python -m labkit ...``: the command line is in ``labkit.instructor.cli``."""
from labkit.instructor.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
