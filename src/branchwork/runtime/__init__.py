"""The orchestration runtime: the engine, the loop, launchers and running one step."""
