"""``python -m datagen``: see :mod:`datagen.cli`."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
