"""Prefect orchestration only: thin flows and tasks that call the idds package."""
