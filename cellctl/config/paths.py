"""Where the embedded default configs live: the package ``cellctl.configs`` (the repository's
``configs/`` folder, mapped beneath ``cellctl`` in a wheel and in an editable install alike)."""

from importlib.resources import files
from pathlib import Path

CONFIG_DIR = Path(str(files("cellctl.configs")))
DEMO_CONFIG = CONFIG_DIR / "demo_line.yaml"
CELL_CONFIG = CONFIG_DIR / "demo_cell.yaml"
