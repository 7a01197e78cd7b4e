"""Where the embedded default configs live: the repository's ``configs/`` folder, next to the
packages (the project is installed editable, as the README's quickstart does)."""

from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
DEMO_CONFIG = CONFIG_DIR / "demo_line.yaml"
CELL_CONFIG = CONFIG_DIR / "demo_cell.yaml"
