"""ACME's device helpers, in a package called ``drivers`` beside cellctl's own ``cellctl.drivers``."""
