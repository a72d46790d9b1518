"""One module per stage of an iteration: generate → score → consistency → pairs → train
(→ evaluate), each with a `run(ctx, t)`. Each reads the previous stage's artifact under
`iter-<t>/` and writes its own, named in `paths.ARTIFACTS`."""
