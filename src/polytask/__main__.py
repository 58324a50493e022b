"""``python -m polytask``: the same command line as the ``polytask`` script."""

from polytask.cli import run

if __name__ == "__main__":
    run()
