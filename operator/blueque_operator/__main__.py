"""`python -m blueque_operator`: the same as the `blueque-operator` command."""

from blueque_operator.cli import main

main()
