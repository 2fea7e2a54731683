"""The RNN-NADE (Boulanger-Lewandowski, Bengio & Vincent, ICML 2012, sec. 5): interface, one file per framework."""
