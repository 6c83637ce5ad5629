"""Data in and out: loading and saving, formats, JSON readers, Arrow columns, the
bundled sample and the paper's released subsets."""
