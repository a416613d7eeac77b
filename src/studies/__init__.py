"""Studies: each a command that trains or evaluates many runs and writes a table and a figure.

- :mod:`~src.studies.zoo`: every filter x {compact, CAN, autoencoder} at a step budget (``make zoo``).
- :mod:`~src.studies.sweep`: model size and CAN depth against PSNR (``make sweeps``).
- :mod:`~src.studies.spread`: seeds and spreads of the zoo's rows.
- :mod:`~src.studies.sizes`: the shipped model at image sizes from 1x1 up.
- :mod:`~src.studies.ablation_gan`: L1 alone against GAN + L1 (``make ablation-gan``).
- :mod:`~src.studies.quantize`: fp16 / bf16 / int8 copies of the shipped checkpoints (``make quantize``).
- :mod:`~src.studies.teach_target`: teach by example on held-out photos (``make teach-target``).
- :mod:`~src.studies.runs`: the run ledger the long studies share (a row a run, appended as it finishes).

May import: everything below it (:mod:`src.reports` and down: training, evaluation, inference, models,
dataset, filters, io). Not :mod:`src.bench` (a benchmark times, a study trains: neither needs the other).
"""
