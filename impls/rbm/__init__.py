"""The window RBM (Smolensky 1986; Hinton 2002): its interface and one file per framework."""
