"""Recipe + target + zoo data -> BuildPlan: the cascade, and the size, memory and time predictions."""
