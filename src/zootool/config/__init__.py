"""Recipes and zoo data: schemas, loading, the recipe registry, scaffolding new recipes."""
