"""tunesmith: supervised fine-tuning of pretrained LLMs, end to end."""

__version__ = "0.1.0"
