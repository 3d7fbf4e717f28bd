"""The orchestration runtime: run context, futures, engine, loop and launchers."""
