"""The dashboard's screens, one per file: home (runs and queue), run, GPUs, compare, help,
and the confirmation and file prompts."""
