"""Hardware-in-the-loop suite: real boards with ``--port``, the fake modem otherwise."""
