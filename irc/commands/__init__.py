"""One module per ``irc`` subcommand; each defines ``command``."""
