"""``python -m infercam`` (also what ``torchrun -m infercam`` runs)."""
import sys

from .cli import main

sys.exit(main())
