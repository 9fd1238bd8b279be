"""The desktop window (PySide6). The only package that imports Qt.

Everything here talks to the store through ``explorer.api.Strata``; long operations run
in ``workers`` and report back through queued signals, so the window never waits on disk.
"""
