"""The web dashboard (``/ui``): pages, tables and their exports."""
