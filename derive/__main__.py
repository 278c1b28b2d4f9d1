"""Allow `python -m derive` (the same entry point as the `derive` command)."""

from derive.cli import run

if __name__ == "__main__":
    run()
