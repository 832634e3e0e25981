"""The client library: the connection state machine, rooms, the send and receive paths.

The public names are re-exported from ``e2echat``; import them from there.
"""
