"""The sans-I/O core: protocol state machines that take bytes and an explicit `now`, and queue frames to send.

Nothing here reads a clock, touches a socket or an event loop, or uses the global random module.
"""
