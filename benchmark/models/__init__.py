"""Built-in model plugins, one module per family; each registers itself with @register."""
