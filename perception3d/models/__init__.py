"""Point-cloud models, one family per file: RoITr (registration), GPSFormer (shapes, parts), FlatFormer and DSVT
(lidar detectors). Each file ends with its named variants (the paper's hyperparameters, plus tiny ones for tests)
and the converter for official checkpoints; `omnisense.models` is the one table that names them all.
"""
