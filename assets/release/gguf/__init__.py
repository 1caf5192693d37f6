"""GGUF export of a merged model: the writer, the read-back checks, the Ollama Modelfile, and the asset."""
