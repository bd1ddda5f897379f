"""datanet's HTTP control API (the daemon serves it; the CLI and the client use it).

Modules:

* :mod:`datanet.api.app` - the ASGI application (starlette): ``create_app``.
* :mod:`datanet.api.routes` - every endpoint with its schema; the OpenAPI document
  is generated from this table.
* :mod:`datanet.api.errors` - the HTTP status of every error (the error classes
  and their code registry are in :mod:`datanet.errors`).
* :mod:`datanet.api.results` - the API's answers as typed records, shared with
  :mod:`datanet.client`.

This package's ``__init__`` imports nothing, so the client can import
:mod:`datanet.api.results` without loading starlette.
"""

__all__: list[str] = []
