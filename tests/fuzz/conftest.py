# The harnesses here are run by hand (README.md); pytest must never collect them.
collect_ignore_glob = ["*.py"]
