"""SANA-FE network descriptions (YAML) written from the integer network."""
