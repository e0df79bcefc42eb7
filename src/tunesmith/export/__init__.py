"""Stage: export. A run's weights as standalone model folders (``adapter/``, ``merged/``, each with a model card)
that plain transformers and peft load, and as a GGUF file with an Ollama ``Modelfile`` (llama.cpp, Ollama)."""

from tunesmith.export.folders import export_run
from tunesmith.export.gguf import export_gguf

__all__ = ["export_gguf", "export_run"]
