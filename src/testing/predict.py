"""``python -m src.testing.predict`` (the README's first command before the layout change) = ``src.inference.predict``."""
from src.cli import run_cli
from src.inference.predict import main, predict  # noqa: F401

if __name__ == "__main__":
    run_cli(main)
