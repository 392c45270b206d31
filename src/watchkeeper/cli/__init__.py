"""The ``watchkeeper`` command line."""
