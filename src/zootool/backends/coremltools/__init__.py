"""The Core ML backend: export to .mlpackage, compression, runtime."""
