"""A toy third model: independent Bernoulli units, no hidden layer (the catalogue test adds it to a copy)."""
