"""Where the embedded default configs live: inside the installed package (``cellctl/configs``,
what a wheel carries), or the repository's ``configs/`` folder next to the packages (a source
checkout or an editable install)."""

from pathlib import Path

_PACKAGED = Path(__file__).resolve().parent / "configs"
CONFIG_DIR = _PACKAGED if _PACKAGED.is_dir() else Path(__file__).resolve().parent.parent / "configs"
DEMO_CONFIG = CONFIG_DIR / "demo_line.yaml"
CELL_CONFIG = CONFIG_DIR / "demo_cell.yaml"
