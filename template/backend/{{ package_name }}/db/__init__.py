"""Database access for the application (template-owned).

``get_engine()`` is the application's engine on ``DATABASE_URL``; migrations
use ``db.migrate`` instead, which picks the direct connection.
"""

from functools import cache

from sqlalchemy import Engine
from sqlmodel import create_engine

from .settings import app_url


@cache
def get_engine() -> Engine:
    # pool_pre_ping: Neon computes scale to zero and drop idle connections.
    return create_engine(app_url(), pool_pre_ping=True)
