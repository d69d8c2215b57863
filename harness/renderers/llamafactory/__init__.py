"""LLaMA-Factory 0.9.5, its real code: ``upstream`` (the lazy import), ``config`` (options and train.yaml),
``patches`` (recorders and a private template copy), ``dataset`` (the dataset form), ``renderer`` (the
``llamafactory:`` training side) and ``export`` (the ``llamafactory-jinja:`` / ``llamafactory-ollama:`` kinds)."""
