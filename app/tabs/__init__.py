"""One module per tab. Each module defines ``TAB_TITLE`` (str), ``TAB_ORDER`` (int, lower is further left),
``build_tab() -> None`` (called inside ``gr.Tab``), and optionally ``warmup() -> None`` run once at start-up.
:mod:`app.main` discovers them, so adding a tab touches no shared file."""
