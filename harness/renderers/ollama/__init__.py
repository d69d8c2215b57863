"""Ollama, as its server builds prompts: ``renderer`` (the ``ollama:`` kind), ``gorender`` (Go's text/template in a
small Go program, ``go/``), ``ctx`` (``num_ctx`` fitting) and ``modelfile`` (the Modelfile parser)."""
