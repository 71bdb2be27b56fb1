"""asyncio-facing facades over the sans-I/O core: UDP endpoints, TCP transports and servers, and their drivers."""
