"""The model: the only package that imports torch, transformers, gguf or safetensors."""
