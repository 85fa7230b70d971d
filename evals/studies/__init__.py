"""Stand-alone studies and build scripts that are not eval suites (the shipped sentiment head, ...)."""
