"""The ``cdn`` operator command line: one module per command group."""
