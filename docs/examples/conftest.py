pytest_plugins = ["e2echat.testing"]
