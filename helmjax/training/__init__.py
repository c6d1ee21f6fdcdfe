"""Training classifiers: one run, or several stacked into one program, through one epoch loop.

`recipe` (settings, optimizer, train state), `inputs` (stored data -> model input, augmentation), `micro_batches`
(gradient slices as a wrapper around the loss's gradient), `step` (the train and evaluation steps), `performance`
(the platform's layers, compiler options, slice count and stack size: the one speed seam), `pipeline` (the input
pipeline on grain: sources, per-epoch orders, per-process rows, batches on the mesh, its position), `trainer`
(compiled steps of a stack of runs on a device mesh), `loop` (the epoch loop: resume, log, checkpoint, finish),
`run_files` (what a run directory holds) and `checkpoints` (orbax).
"""
