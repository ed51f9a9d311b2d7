"""Training: the resumable loop and the stages.

``loop`` (``Trainer``), ``loop_config`` (``TrainerConfig``), ``optim`` (optimizer, learning-rate
schedule), ``sampler`` (the batches of step ``s``), ``rng_state``, ``checkpoints``, ``signals``
(Ctrl-C/SIGTERM), ``runs`` (a run's start and record), ``stages`` (the registry behind
``superpoint train <stage>``); the stages ``magicpoint`` and ``superpoint``; ``label_rounds``
(export labels, retrain the detector, export again); ``distributed`` (DDP).
"""
