"""`cai run`: the whole constitutional loop from one recipe, one folder per stage, and its report."""
