"""Small shared helpers: files, masks, distributed ranks, threads."""
