"""Stand-alone training and evaluation of networks."""
