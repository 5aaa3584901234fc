"""LFM2-MoE: schema, export-friendly layers, decode graph, weight loading."""
