"""datanet's HTTP control API (the daemon serves it; the CLI and the client use it).

Modules:

* :mod:`datanet.api.app` - the ASGI application (starlette): ``create_app``.
* :mod:`datanet.api.routes` - every endpoint with its schema; the OpenAPI document
  is generated from this table.
* :mod:`datanet.api.errors` - the HTTP layer's errors and the code/status tables,
  shared with :mod:`datanet.client`.

This package's ``__init__`` imports nothing, so the client can import
:mod:`datanet.api.errors` without loading starlette.
"""

__all__: list[str] = []
