"""``python -m advgrad``."""

from advgrad.cli import main

if __name__ == "__main__":
    main(prog_name="advgrad")
