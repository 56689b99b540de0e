"""Reports a person reads: the self-contained HTML design report (Qt-free; the CLI and the app write it)."""
