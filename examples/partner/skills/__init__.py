"""ACME's skills for cellctl: ``stamp`` (registered through the ``cellctl.skills`` entry point in
pyproject.toml, so installing this package is enough for recipes to name it).

The package is called ``skills`` on purpose, as a partner's would be: cellctl installs only the
``cellctl`` name (its own skills are ``cellctl.skills``), so the two never clash."""
