"""``python -m selfsup`` runs the command line."""

from selfsup.cli import main

main()
