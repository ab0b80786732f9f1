"""``python -m infercam`` (also what ``torchrun -m infercam`` runs)."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
