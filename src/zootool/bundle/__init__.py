"""The bundle: layout, files beside the model, engine contract, card, manifest, verify."""
