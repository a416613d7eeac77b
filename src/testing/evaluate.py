"""``python -m src.testing.evaluate`` (the README's command before the layout change) = ``src.evaluation.evaluate``."""
from src.cli import run_cli
from src.evaluation.evaluate import evaluate_images, main  # noqa: F401

if __name__ == "__main__":
    run_cli(main)
