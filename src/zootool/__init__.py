"""zootool: declarative recipes → Core AI bundles on the Hugging Face Hub."""

__version__ = "0.1.0"
