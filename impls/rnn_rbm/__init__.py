"""The RNN-RBM (Boulanger-Lewandowski, Bengio & Vincent, ICML 2012): its interface and one file per framework."""
