"""``python -m e2echat_server``: the same as the ``e2echat-server`` command."""

from e2echat_server.entry import main

main()
