"""The config layer: one schema for every command and config file (``privtangent.config.schema``),
how a mapping becomes a validated dataclass (``privtangent.config.fields``), and how a file is
read (``privtangent.config.files``). Import from those modules: this package imports nothing, so
that ``privtangent.dp.config`` and ``privtangent.train.config`` can use ``fields`` while the
schema builds on them."""
