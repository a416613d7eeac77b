"""``python -m src.bench`` = ``python -m src.bench.speed`` (the README's ``make bench``)."""
from src.bench.speed import main
from src.cli import run_cli

run_cli(main)
