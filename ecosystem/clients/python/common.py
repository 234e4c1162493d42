"""Shared bits of the examples: the connection string and connections."""

import os
import sys

import psycopg


def database_url() -> str:
    # PGWA_DATABASE_URL first (the variable the worker reads), then DATABASE_URL, then
    # the worker's default, so the examples talk to the database the worker uses.
    return (
        os.environ.get("PGWA_DATABASE_URL")
        or os.environ.get("DATABASE_URL")
        or "postgres://postgres@127.0.0.1:5432/pgwa"
    )


async def connect(autocommit: bool = True) -> psycopg.AsyncConnection:
    # autocommit: a connection that LISTENs must not sit inside a transaction, or
    # notifications wait until it ends.
    return await psycopg.AsyncConnection.connect(
        database_url(), autocommit=autocommit, application_name="pgwa-python-example"
    )


# Line by line even into a pipe or a log file: these scripts print events as they come.
sys.stdout.reconfigure(line_buffering=True)
