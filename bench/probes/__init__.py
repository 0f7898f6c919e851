"""Scripts the bench runs with a rendered project's own interpreter, from its ``backend/``."""
