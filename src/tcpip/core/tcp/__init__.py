"""TCP: connections, layer and their data structures (sans-I/O)."""
