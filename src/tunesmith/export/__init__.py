"""Stage: export. A run's weights as standalone model folders (``adapter/``, ``merged/``, each with a model card)
that plain transformers and peft load (`write_model_cards` writes their cards again, e.g. once the run is gated), and
as a GGUF file with an Ollama ``Modelfile`` (llama.cpp, Ollama)."""

from tunesmith.export.folders import export_run, write_model_cards
from tunesmith.export.gguf import export_gguf

__all__ = ["export_gguf", "export_run", "write_model_cards"]
