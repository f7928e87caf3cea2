"""The API reference: the OpenAPI document (``/openapi.json``) and Swagger UI to read it (``/docs``).

FastAPI's own page loads its JavaScript and CSS from a CDN, so on a machine without internet it
is blank. This one loads them from the server itself: the assets ship in the ``fastapi-offline``
package (installed from the lock) and are served under ``/docs-assets``. Nothing on the page asks
any other host for anything: Swagger UI's online validator badge, which would send the document's
URL to a third party, is off. ReDoc is not offered: its bundle fetches its logo from its vendor's
CDN on every view, with no option to stop it (docs/decisions.md).

Outside production the reference is served; in production only with ``RUNWIRE_PUBLIC_DOCS=true``
(otherwise both paths answer 404). The app factory decides (``Settings.serves_api_reference``).
"""

from __future__ import annotations

from importlib import resources

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["ASSETS_PATH", "DOCS_PATH", "OPENAPI_PATH", "install"]

OPENAPI_PATH = "/openapi.json"
DOCS_PATH = "/docs"
ASSETS_PATH = "/docs-assets"

# Swagger UI's defaults (FastAPI's), less the online validator: its badge would fetch
# validator.swagger.io with the document's URL on every page load from a public host.
_SWAGGER_UI_PARAMETERS = {"validatorUrl": None}


def install(app: FastAPI) -> None:
    """Serve Swagger UI and its assets on ``app``, which was made with ``openapi_url`` set to
    :data:`OPENAPI_PATH` and FastAPI's own ``docs_url`` and ``redoc_url`` off."""
    assets = resources.files("fastapi_offline") / "static"
    app.mount(ASSETS_PATH, StaticFiles(directory=str(assets)), name="docs-assets")
    title = f"{app.title} API reference"

    @app.get(DOCS_PATH, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{OPENAPI_PATH}",
            title=title,
            swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
            swagger_ui_parameters=_SWAGGER_UI_PARAMETERS,
        )
