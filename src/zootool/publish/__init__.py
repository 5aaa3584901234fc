"""Publishing to the Hugging Face Hub: the one HfApi adapter, file selection, error table."""
