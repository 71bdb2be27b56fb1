"""asyncio TCP over tcpip: transports, servers and the driver between the sans-I/O core and the loop."""
