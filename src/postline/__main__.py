"""`python -m postline` is the `postline` command."""

from postline.cli import main

main()
