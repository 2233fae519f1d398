"""A local Runloop API emulator for demos, tests and users' own DAG tests."""
