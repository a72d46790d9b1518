"""One module per stage of an iteration: generate → reward → consistency → pairs → train
(→ evaluate). Each reads the previous stage's artifact under `iter-<t>/` and writes its own."""
