"""asyncio-facing facades over the sans-I/O core: transports and endpoints (UDP now, TCP next)."""
