"""One module per `redex` subcommand. Each module defines ``NAME`` (str), ``HELP`` (str) and
``add_arguments(parser)`` and ``run(args) -> dict`` (the JSON object printed with ``--json``), and optionally
``render(result: dict) -> str`` for the human-readable output. :mod:`app.cli` discovers them."""
