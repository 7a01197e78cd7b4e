"""The example and embedded default line configs. Installed as ``cellctl.configs`` (see
pyproject.toml) so that a wheel carries them; ``cellctl.config.paths`` finds them either way."""
