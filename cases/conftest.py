"""Cases: consistency gates users run with pytest. Known divergences live in known_divergences.toml."""
