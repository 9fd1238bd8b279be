"""Images to and from OCI distribution registries (HTTP API v2), and from a local Docker
or Podman.

Layering inside the package, bottom up: ``settings`` and ``credentials`` (files on disk),
``transport`` (keep-alive HTTP, redirects, one-line errors), ``auth`` (challenges and
tokens), ``client`` (the v2 endpoints), ``manifests`` (parsing and writing them), then
the operations ``pull``, ``push``, ``daemon`` and ``ensure``. Only the operations touch
the store.
"""
