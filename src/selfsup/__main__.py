"""``python -m selfsup`` runs the command line."""

from selfsup._entry import main

main()
