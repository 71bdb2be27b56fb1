"""Testing tools for tcpip users and its own tests: the TCP script runner (tcpip.testing.scripts)."""
