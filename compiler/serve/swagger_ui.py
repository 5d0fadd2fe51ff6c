"""Backend, local endpoints: the Swagger UI page of an endpoint, from the swagger-ui files that the
`swagger-ui-bundle` package ships (no CDN: the page works with no network).

The page reads the endpoint's own OpenAPI 3 document (azmlinfsrv's /swagger.json?version=3, built from score.py's
inference-schema decorators) with the deployment's sample request set as the request example; its Authorize
button takes `Bearer <key>`, the document's security scheme.
"""

from __future__ import annotations

import json
from pathlib import Path

from capc.errors import CapcError

DOCS_PREFIX = "/docs/"
SPEC_URL = "/swagger.json?version=3"  # OpenAPI 3: no `schemes: [https]`, so "try it out" calls this origin
UI_SPEC_PATH = DOCS_PREFIX + "openapi.json"  # the same document, with the sample request as example

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="UTF-8">
  <title>{title} - Swagger UI</title>
  <link rel="stylesheet" type="text/css" href="{prefix}swagger-ui.css">
  <link rel="icon" type="image/png" href="{prefix}favicon-32x32.png" sizes="32x32">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{prefix}swagger-ui-bundle.js" charset="UTF-8"></script>
  <script src="{prefix}swagger-ui-standalone-preset.js" charset="UTF-8"></script>
  <script>
    window.onload = function () {{
      window.ui = SwaggerUIBundle({{
        url: {spec_url},
        dom_id: "#swagger-ui",
        deepLinking: true,
        persistAuthorization: false,
        presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
        layout: "BaseLayout"
      }});
    }};
  </script>
</body>
</html>
"""


def static_root() -> Path:
    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:
        raise CapcError("the Swagger UI page needs the `swagger-ui-bundle` package.", "pip install swagger-ui-bundle") from None
    return Path(str(swagger_ui_path))


def page(title: str) -> bytes:
    return PAGE.format(title=_html_escape(title), prefix=DOCS_PREFIX, spec_url=json.dumps(UI_SPEC_PATH)).encode()


def with_example(document: dict, sample_request: Path) -> dict:
    """Set the request body example to the deployment's sample request (when there is one and it is JSON)."""
    try:
        example = json.loads(sample_request.read_text())
    except (OSError, ValueError):
        return document
    schema = document.get("components", {}).get("schemas", {}).get("ServiceInput")
    if isinstance(schema, dict):
        schema["example"] = example
    return document


def static_file(name: str) -> Path | None:
    """A file of the bundle by its plain name; None for anything else (no paths, no traversal)."""
    if "/" in name or "\\" in name or name.startswith("."):
        return None
    path = static_root() / name
    return path if path.is_file() else None


def _html_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
