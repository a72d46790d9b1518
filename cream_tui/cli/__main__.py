"""`python -m cream_tui.cli`: the `cream` command."""

from cream_tui.cli import main

if __name__ == "__main__":
    main()
