"""The web app: server-rendered pages (Jinja2) with htmx and server-sent events, served by
the API's process under ``/`` (the API stays under ``/api``). Pages call the same service
functions as the API routes, with the signed-in user's team as the Principal.

``install.py`` mounts it; ``auth.py`` holds sessions and CSRF; ``pages/`` one module per
area; ``templates/`` and ``static/`` (htmx and its SSE extension, vendored) ship in the
package. docs/web.md describes it for users.
"""
