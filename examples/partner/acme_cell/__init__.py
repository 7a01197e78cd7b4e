"""ACME's stamping cell for cellctl: the ``stamp`` skill (registered through the ``cellctl.skills``
entry point in pyproject.toml, so installing this package is enough for recipes to name it)."""
