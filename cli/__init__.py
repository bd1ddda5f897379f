"""cli: the ``datanet`` command line (click). Talks to the rest through public APIs only."""
