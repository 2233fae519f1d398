"""pytest plugin registering the ``runloop_emulator`` fixture."""
