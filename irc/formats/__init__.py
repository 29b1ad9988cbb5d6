"""File formats irc both reads and writes, shared by a frontend and a backend (neither owns them)."""
