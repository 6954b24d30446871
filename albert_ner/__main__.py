"""`python -m albert_ner`: the `albert-ner` command line."""
import sys

from albert_ner.cli import main

sys.exit(main())
