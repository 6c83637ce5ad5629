"""Model plumbing shared by training, generation and local backends: loading (HF,
GGUF), weight fingerprints, left padding and seeded sampling."""
